"""The `runner` command line (typer). Only commands that work are listed."""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from importlib.metadata import version as package_version

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from contract.codes import RunnerExit
from contract.files import EVENTS_FILE, SUPERVISOR_LOG, TRAINER_LOG
from runner import layout
from runner.deadline import deadline, session_start
from runner.spec import (JobSpec, SpecError, check_store_url, dump_spec, load_spec, parse_spec_bytes,
                         placeholder_problem, same_spec)
from runner.status import (UNREADABLE, JobState, UnreadableState, describe, effective_phase, read_state,
                           shown_epoch, status_document, unreadable_document)
from runner.store import JobStore, RootMode, Store, StoreError, StoreMissing, StoreUnavailable, redact
from runner.pull import WEIGHTS, PullError, pull_checkpoint, pull_weights
from runner.supervisor import DETACHED_OUTPUT, STARTED, Supervisor
from runner.trainer_check import trainer_missing
from runner.lease import LeaseRefused

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_INVALID = RunnerExit.INVALID

# The store the running command opened, for the one line that reports its failure.
_opened: dict[str, str] = {}


class _Commands(TyperGroup):
    """Every command: a store that fails (unreachable, refused) is one line on stderr and exit 2,
    never a traceback. (`submit`/`attach` report failures during the run themselves.)"""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except StoreError as error:
            err.print(_store_failure(error), highlight=False, markup=False)
            raise typer.Exit(EXIT_INVALID) from None


def _store_failure(error: StoreError) -> str:
    where = redact(_opened.get("url", "?"))
    text = " ".join(str(error).split())[:500]
    if isinstance(error, StoreMissing):
        return f"store {where}: {text}"
    if isinstance(error, StoreUnavailable):
        check = ("check the network and that the store is up (for gs://: the bucket, STORAGE_EMULATOR_HOST; "
                 "for a Drive mount: that it is mounted), then try again")
    else:
        check = "check the store URL and that these credentials may read and write it"
    return f"store {where} failed: {text}; {check}"


EXIT_CODES = ("Exit codes: 0 done or paused (or nothing to do); 1 the job failed; 2 invalid input, no such "
              "job, the job is held by another session, or the store failed; 3 taken over by another "
              "session; 4 stopped with files only in the work dir (the store stayed unreachable).")

SESSION_CODES = ("Exit codes: 0 done, paused or nothing to do; 1 the job failed; 2 invalid input, no such job, "
                 "held by another session, or the store failed; 3 taken over; 4 files left only in the work dir.")
READ_CODES = "Exit codes: 0 ok; 2 no such job, unreadable status, or the store failed."


def _epilog(example: str, codes: str) -> str:
    return f"Example: {example}\n\n{codes}"


app = typer.Typer(
    cls=_Commands,
    help="A resumable job runner for preemptible GPUs.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
)


def _version(asked: bool) -> None:
    if asked:
        out.print(f"runner {package_version('resumable-runner')}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the runner's version and exit")) -> None:
    """A resumable job runner for preemptible GPUs: validate, run and resume training jobs."""
    # Retry warnings would go to stderr through logging's last resort; a command reports the
    # store's failure in one line instead. `_supervise` turns them on for the supervisor's log.
    logging.getLogger("runner.store").setLevel(logging.ERROR)


def _ladder_table(spec: JobSpec) -> Table:
    table = Table(title="OOM ladder (tried top to bottom)")
    for column in ("rung", "batch", "input [W, H]", "heatmap", "accumulation", "act. checkpointing"):
        table.add_column(column)
    for index, rung in enumerate(spec.ladder()):
        hw, hh = rung.heatmap_size(spec.train.stride)
        table.add_row(
            str(index),
            str(rung.batch_size),
            f"{rung.input_size[0]} x {rung.input_size[1]}",
            f"{hw} x {hh}",
            str(rung.accumulation),
            "yes" if rung.activation_checkpointing else "no",
        )
    return table


@app.command(epilog=_epilog("runner validate jobs/t4.yaml", "Exit codes: 0 valid, 2 invalid."))
def validate(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec YAML, e.g. jobs/t4.yaml"),
    as_json: bool = typer.Option(False, "--json", help="print the resolved spec and ladder as JSON"),
) -> None:
    """Check a job spec; print it with every default resolved and the OOM rungs it implies."""
    try:
        spec = load_spec(spec_path)
    except SpecError as error:
        err.print(f"[bold red]{error.source} is invalid[/] ({len(error.problems)} problem(s)):", highlight=False)
        for problem in error.problems:
            err.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    placeholder = placeholder_problem(spec.store)
    if placeholder:
        err.print(f"[bold red]{spec_path} is invalid[/] (1 problem(s)):", highlight=False)
        err.print(f"  - store: {placeholder}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    if as_json:
        document = {
            "spec": spec.model_dump(mode="json"),
            "ladder": [rung.model_dump(mode="json") for rung in spec.ladder()],
        }
        out.print_json(json.dumps(document))
        return
    out.print(f"[bold green]{spec_path} is valid[/]: job [bold]{spec.name}[/]", highlight=False)
    out.print(dump_spec(spec), highlight=False, markup=False)
    out.print(_ladder_table(spec))


# -- running jobs ------------------------------------------------------------------------------

STORE_HELP = "store URL: gs://BUCKET/PREFIX, a local path or a Drive folder"
STORE_OPTION = typer.Option(None, "--store", envvar="RUNNER_STORE", help=f"{STORE_HELP}; default: ./runs")
SUBMIT_STORE_OPTION = typer.Option(None, "--store", envvar="RUNNER_STORE",
                                   help=f"{STORE_HELP}; default: the spec's `store`")
WORKDIR_OPTION = typer.Option(None, "--workdir", help="local work dir; default: ./.runner/JOB")
JOB_ARGUMENT = typer.Argument(..., metavar="JOB", help="the job's name (the spec's `name`)", show_default=False)
TAKE_OVER_OPTION = typer.Option(False, "--take-over", help="take the job from a session that still holds it "
                                                           "(that session stops and writes nothing more)")
DETACH_OPTION = typer.Option(False, "--detach", help="run the session in the background; returns once it holds "
                                                     "the job and its phase is in the store, or says why not")
FINISHED = ("done", "cancelled")  # a session started on such a job would have nothing to do


# Without --store or $RUNNER_STORE, the store a spec gets when it names none: after the demo,
# `runner status demo` needs nothing more.
DEFAULT_STORE = str(JobSpec.model_fields["store"].default)


def _store_url(option: str | None, spec: JobSpec | None = None) -> str:
    return option or (spec.store if spec else DEFAULT_STORE)


def _open_store(url: str, mode: RootMode = "read") -> Store:
    """The store, checked before anything is written: a URL we can use, not a placeholder, and a
    root that is there (a mounted Drive, an existing bucket; see `Store.check_root`)."""
    try:
        check_store_url(url)
    except ValueError as error:
        err.print(f"store: {error}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    placeholder = placeholder_problem(url)
    if placeholder:
        err.print(f"store: {placeholder}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    _opened["url"] = url
    store = Store.quick(url)
    store.check_root(mode)
    return store


def _load_or_exit(spec_path: Path) -> JobSpec:
    try:
        return load_spec(spec_path)
    except SpecError as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None


def _supervise(spec: JobSpec, url: str, workdir: Path | None, take_over: bool) -> None:
    """Run a session in this process. The CLI's own reads used a quick store; the session's
    store is patient, since a supervisor outlasts outages rather than reporting them."""
    log_format = "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(format=log_format, level=logging.INFO)
    logging.getLogger("runner.store").setLevel(logging.NOTSET)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # a skipped overlapping tick is expected
    store = Store(url).job(spec.name)
    workdir = workdir or Path(".runner") / spec.name
    workdir.mkdir(parents=True, exist_ok=True)
    # The session's own log, uploaded with the trainer's (`runner logs JOB --supervisor`).
    handler = logging.FileHandler(workdir / SUPERVISOR_LOG, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(log_format))
    logging.getLogger().addHandler(handler)
    supervisor = Supervisor(spec, store, workdir, take_over=take_over)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: supervisor.stop_requested.set())
    try:
        code = supervisor.run()
    except LeaseRefused as refused:
        err.print(f"cannot run {spec.name}: {refused}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except (RuntimeError, StoreError) as error:  # already recorded as `failed` in the status
        err.print(f"job {spec.name} failed: {error}", highlight=False, markup=False)
        raise typer.Exit(RunnerExit.FAILED) from None
    state = supervisor.state
    if code == RunnerExit.TAKEN_OVER:
        out.print(f"job {spec.name}: taken over by another session; this one stopped", highlight=False)
    elif code == RunnerExit.NOT_UPLOADED:
        err.print(f"job {spec.name}: {len(supervisor.not_uploaded)} file(s) are only in {supervisor.workdir}, not "
                  f"in the store: {', '.join(supervisor.not_uploaded[:8])}; run `runner attach {spec.name} "
                  f"--store {store.url} --workdir {supervisor.workdir}` on this machine to upload them",
                  highlight=False, markup=False)
    else:
        out.print(f"job {spec.name}: {state.phase}" + (f" ({state.reason})" if state.reason else ""),
                  highlight=False)
    raise typer.Exit(code)


@app.command(epilog=_epilog("runner submit jobs/t4.yaml --detach", SESSION_CODES))
def submit(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec YAML, e.g. jobs/t4.yaml", show_default=False),
    store_url: str | None = SUBMIT_STORE_OPTION,
    workdir: Path | None = WORKDIR_OPTION,
    detach: bool = DETACH_OPTION,
    force_spec: bool = typer.Option(False, "--force-spec", help="replace the stored spec of an existing job"),
    take_over: bool = TAKE_OVER_OPTION,
    create: bool = typer.Option(False, "--create", help="create a local store's folder even if its parent "
                                                        "folder does not exist"),
) -> None:
    """Run a job: validate, lease, restore, prepare data, train, sync. Resubmitting resumes it."""
    spec = _load_or_exit(spec_path)
    _require_trainer()
    url = _store_url(store_url, spec)
    job = _open_store(url, "create" if create else "write").job(spec.name)
    stored = job.get_bytes(layout.SPEC)
    if stored is not None and not same_spec(stored, spec) and not force_spec:
        err.print(f"job {spec.name} already exists in {url} with a different spec; resubmit the same spec to "
                  "resume it, `runner attach` it, or pass --force-spec to replace the spec", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    if stored is not None and not force_spec:  # a replaced spec may ask for more (e.g. more epochs)
        _exit_if_finished(job)
    if spec.session.max_hours is not None:
        left = _session_left_minutes(spec)
        if left < spec.checkpoint.every_minutes:
            err.print(f"warning: {left:.0f} min left in this session, less than one checkpoint interval "
                      f"({spec.checkpoint.every_minutes:g} min)", highlight=False)
    if detach:
        _detach(spec.name, ["submit", str(spec_path)] + (["--force-spec"] if force_spec else []), url, workdir,
                take_over)
        return
    _supervise(spec, url, workdir, take_over)


def _require_trainer() -> None:
    """submit/attach launch `python -m trainer`: without it (a runner-only install, e.g. a laptop
    that only watches jobs), one line and exit 2, before the store is touched."""
    missing = trainer_missing()
    if missing:
        err.print(missing, highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)


def _exit_if_finished(job: JobStore) -> None:
    """A done or cancelled job: say so and exit 0, before any lease or data preparation."""
    try:
        state = _read_state(job)
    except UnreadableState:
        return  # the session keeps the unreadable bytes and starts a fresh status
    if state is not None and state.phase in FINISHED:
        reason = f" ({state.reason})" if state.reason else ""
        out.print(f"job {job.name} is already {state.phase}{reason}; nothing to run. Its weights: "
                  f"`runner status {job.name}`; to train again, submit it under a new name", highlight=False)
        raise typer.Exit(RunnerExit.OK)


def _detach(job_name: str, args: list[str], url: str, workdir: Path | None, take_over: bool) -> None:
    """Run `runner ARGS` as a supervisor in the background, in a session of its own, so closing
    the notebook cell or the terminal does not stop it, and tell the truth about it: return once
    the session holds the lease and its phase is in the store (the supervisor writes
    `supervisor.STARTED` then), or print why it did not start and exit with its code.

    Its console output goes to WORK/supervisor.out (what it printed before it had a log); its log
    is WORK/supervisor.log, which the session uploads as `logs/SESSION/supervisor.log` parts.
    """
    workdir = workdir or Path(".runner") / job_name
    workdir.mkdir(parents=True, exist_ok=True)
    console = workdir / DETACHED_OUTPUT
    started = workdir / STARTED
    started.unlink(missing_ok=True)
    offset = console.stat().st_size if console.exists() else 0
    cmd = [sys.executable, "-m", "runner", *args, "--store", url, "--workdir", str(workdir)]
    if take_over:
        cmd.append("--take-over")
    with console.open("a") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, start_new_session=True)
    while True:
        info = _started(started, proc.pid)
        if info is not None:
            out.print(f"job {job_name}: session {info['session']} holds it, phase {info['phase']}; running in the "
                      f"background (supervisor pid {proc.pid}, log {workdir / SUPERVISOR_LOG}); follow it with "
                      f"`runner status {job_name} --store {redact(url)}`", highlight=False)
            return
        code = proc.poll()
        if code is not None:
            said = _new_lines(console, offset)
            last = said[-1] if said else f"see {console}"
            if code == 0:
                out.print(last, highlight=False, markup=False)
                return
            err.print(f"job {job_name}: the session did not start (exit {code}): {last}", highlight=False, markup=False)
            raise typer.Exit(code)
        time.sleep(0.2)


def _started(path: Path, pid: int) -> dict | None:
    """The supervisor's `STARTED` note, if this process wrote it."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("pid") == pid else None


def _new_lines(path: Path, offset: int) -> list[str]:
    with path.open("rb") as f:
        f.seek(offset)
        return [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]


def _session_left_minutes(spec: JobSpec) -> float:
    now = datetime.now(timezone.utc)
    end = deadline(session_start(spec.session.start, now), spec.session.max_hours, spec.session.margin_minutes)
    return (end - now).total_seconds() / 60 if end else float("inf")


@app.command(epilog=_epilog("runner attach demo --store gs://my-bucket/runs --detach", SESSION_CODES))
def attach(
    job_name: str = JOB_ARGUMENT,
    store_url: str | None = STORE_OPTION,
    workdir: Path | None = WORKDIR_OPTION,
    take_over: bool = TAKE_OVER_OPTION,
    detach: bool = DETACH_OPTION,
) -> None:
    """Resume a job from the store on this machine, with the store's spec: no local file needed."""
    _require_trainer()
    job = _existing_job(store_url, job_name)
    data = job.get_bytes(layout.SPEC) or b""
    try:
        spec = parse_spec_bytes(data, f"{job_name}/spec.yaml")
    except SpecError as error:
        more = f" (and {len(error.problems) - 1} more problem(s))" if len(error.problems) > 1 else ""
        first = " ".join(str(error.problems[0]).split())[:300] if error.problems else "invalid"
        err.print(f"{job_name}/spec.yaml in {redact(job.url)} is invalid: {first}{more}",
                  highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    if spec.name != job_name:
        err.print(f"{job_name}/spec.yaml in {redact(job.url)} names job {spec.name!r}, not {job_name!r}; "
                  "refusing to run it", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    _exit_if_finished(job)
    if detach:
        _detach(job_name, ["attach", job_name], job.url, workdir, take_over)
        return
    _supervise(spec, job.url, workdir, take_over)


def _open_job(store_url: str | None, job_name: str) -> JobStore:
    try:
        layout.check_job(job_name)
    except layout.UnsafeName as error:
        err.print(str(error), highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    return _open_store(_store_url(store_url)).job(job_name)


def _existing_job(store_url: str | None, job_name: str) -> JobStore:
    """The job, or one line and exit 2 when the store has no such job (no spec.yaml)."""
    job = _open_job(store_url, job_name)
    if not job.exists(layout.SPEC):
        err.print(f"no job {job_name!r} in {redact(job.url)} (`runner ls` lists the jobs there)",
                  highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    return job


@app.command(epilog=_epilog("runner status demo --store ./runs", READ_CODES))
def status(
    job_name: str | None = typer.Argument(None, metavar="[JOB]", help="one job in detail; without it, a table of all"),
    store_url: str | None = STORE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print state.json (with the derived phase) as JSON"),
) -> None:
    """Where a job stands (or every job in the store), read from the store alone.

    A job whose state.json cannot be read shows as `unreadable` in the list; `status JOB` says
    why in one line and exits 2.
    """
    now = datetime.now(timezone.utc)
    if job_name is None:
        store = _open_store(_store_url(store_url))
        rows: list[tuple[str, JobState | str]] = []
        for name in store.list_jobs():
            try:
                state = _shown_state(store.job(name), now)
            except UnreadableState as error:
                rows.append((name, str(error)))
                continue
            if state is not None:  # a job submitted a moment ago may have no status yet
                rows.append((name, state))
        if as_json:
            out.print_json(json.dumps([
                status_document(s, now) if isinstance(s, JobState) else unreadable_document(name, s)
                for name, s in rows
            ]))
            return
        table = Table(title=f"jobs in {redact(store.url)}")
        for column in ("job", "phase", "epoch", "step", "samples/s", "heartbeat"):
            table.add_column(column)
        for name, s in rows:
            if isinstance(s, JobState):
                table.add_row(*map(Text, (name, effective_phase(s, now), f"{shown_epoch(s)}/{s.max_epochs}", str(s.step),
                              f"{s.samples_per_s:.1f}" if s.samples_per_s else "-", s.heartbeat_at or "never")))
            else:
                table.add_row(*map(Text, (name, UNREADABLE, "-", "-", "-", "-")))
        for name, s in rows:
            if not isinstance(s, JobState):
                err.print(_unreadable_line(store.job(name), s), highlight=False, markup=False)
        out.print(table, markup=False, highlight=False)
        return
    job = _existing_job(store_url, job_name)
    try:
        state = _shown_state(job, now)
    except UnreadableState as error:
        err.print(_unreadable_line(job, str(error)), highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    if state is None:  # submitted a moment ago: the session has not published its first phase yet
        state = JobState(job=job_name)
    if as_json:
        out.print_json(json.dumps(status_document(state, now)))
        return
    table = Table(title=f"job {job_name}", show_header=False)
    for key, value in describe(state, now):
        table.add_row(Text(key), Text(value))
    out.print(table, markup=False, highlight=False)


def _read_state(job: JobStore) -> JobState | None:
    """The job's status, None when it has none; `UnreadableState` when state.json is not one."""
    data = job.get_bytes(layout.STATE)
    return None if data is None else read_state(data)


def _shown_state(job: JobStore, now: datetime) -> JobState | None:
    """The status, checked to render: a value that parses but cannot be shown counts as unreadable."""
    state = _read_state(job)
    if state is None:
        return None
    try:
        describe(state, now)
        json.dumps(status_document(state, now))
    except (TypeError, ValueError, OverflowError) as error:
        raise UnreadableState(" ".join(str(error).split())[:160] or type(error).__name__) from None
    return state


def _unreadable_line(job: JobStore, error: str) -> str:
    return f"{job.name}/{layout.STATE} in {redact(job.url)} is unreadable: {error}"


@app.command("ls", epilog=_epilog("runner ls --store gs://my-bucket/runs", READ_CODES))
def list_jobs(store_url: str | None = STORE_OPTION) -> None:
    """The jobs in a store, one per line."""
    for name in _open_store(_store_url(store_url)).list_jobs():
        out.print(name, highlight=False)


@app.command(epilog=_epilog("runner logs demo --store ./runs -f", READ_CODES))
def logs(
    job_name: str = JOB_ARGUMENT,
    store_url: str | None = STORE_OPTION,
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new lines until the job stops"),
    events: bool = typer.Option(False, "--events", help="events.jsonl instead of trainer.log"),
    supervisor: bool = typer.Option(False, "--supervisor", help="the supervisor's own log instead of trainer.log"),
) -> None:
    """The trainer's log across all sessions, from the store.

    With -f it ends when the job is done, failed, cancelled, paused or interrupted, saying which.
    """
    job = _existing_job(store_url, job_name)
    name = SUPERVISOR_LOG if supervisor else EVENTS_FILE if events else TRAINER_LOG
    printed: set[str] = set()
    warned: set[str] = set()
    while True:
        for key in _log_parts(job, name, warned):
            if key not in printed:
                sys.stdout.write((job.get_bytes(key) or b"").decode(errors="replace"))
                printed.add(key)
        sys.stdout.flush()
        if not follow:
            return
        try:
            state = _read_state(job)
        except UnreadableState as error:
            _warn_once(warned, layout.STATE, _unreadable_line(job, str(error)) + "; following the logs anyway")
            state = None
        phase = effective_phase(state, datetime.now(timezone.utc)) if state is not None else None
        if phase in STOPPED:
            err.print(f"job {job_name} is {phase}" + (f" ({state.reason})" if state and state.reason else "")
                      + "; the log ends here", highlight=False, markup=False)
            return
        time.sleep(_poll_seconds(state))


# Phases in which no session writes to the log: `logs -f` ends on them.
STOPPED = ("done", "failed", "cancelled", "paused", "interrupted")


def _poll_seconds(state: JobState | None) -> float:
    """How long `logs -f` waits between reads: the job's sync interval, kept within 1 s – 60 s."""
    every = state.sync_every_s if state is not None else 5.0
    return min(max(every, 1.0), 60.0) if math.isfinite(every) else 5.0


def _warn_once(warned: set[str], key: str, message: str) -> None:
    if key not in warned:
        warned.add(key)
        err.print(message, highlight=False, markup=False)


def _log_parts(job: JobStore, name: str, warned: set[str]) -> list[str]:
    """The keys of the log's parts, session by session; a folder or part whose name is not a safe
    key is skipped with a one-line warning."""
    keys = []
    for session in job.list_dirs(layout.LOGS):
        folder = f"{layout.LOGS}/{session}"
        if not layout.SESSION_ID.fullmatch(session):
            _warn_once(warned, folder, f"skipped log folder {ascii(f'{job.name}/{folder}')}: not a session id")
            continue
        for part in sorted(p for p in job.list(folder) if p.startswith(f"{name}.")):
            try:
                keys.append(layout.log_key(session, part))
            except layout.UnsafeName:
                _warn_once(warned, f"{folder}/{part}",
                           f"skipped log part {ascii(f'{job.name}/{folder}/{part}')}: not a safe name")
    return keys


@app.command(epilog=_epilog("runner pull demo --store ./runs --out /tmp/w.pt",
                            "Exit codes: 0 pulled and verified; 1 nothing in the store verifies (the file is not "
                            "kept); 2 no such job or the store failed."))
def pull(
    job_name: str = JOB_ARGUMENT,
    store_url: str | None = STORE_OPTION,
    weights: str = typer.Option("best-evalai", "--weights", help=f"which weights: {', '.join(WEIGHTS)}"),
    checkpoint: bool = typer.Option(False, "--checkpoint", help="the newest verifying full checkpoint instead "
                                                                "(for exact resume elsewhere)"),
    out_path: Path | None = typer.Option(None, "--out", help="where to write it; default: ./JOB-WEIGHTS.pt"),
) -> None:
    """Download a job's trained weights (or checkpoint), verified against the store's manifest.

    Prints what it got: the step and epoch, and the metric that made the weights the best.
    """
    if weights not in WEIGHTS:
        err.print(f"--weights {weights!r}: choose one of {', '.join(WEIGHTS)}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    job = _existing_job(store_url, job_name)
    what = "checkpoint" if checkpoint else weights
    target = out_path or Path(f"{job_name}-{what}.pt")
    try:
        if checkpoint:
            got = pull_checkpoint(job, target)
            said = f"step {got.step}, epoch {got.epoch}"
        else:
            said = pull_weights(job, weights, target).describe()
    except PullError as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(RunnerExit.FAILED) from None
    out.print(f"{target}: {job_name} {what}, {said} (sha256 verified)", highlight=False)


@app.command(epilog=_epilog("runner predict demo data/synthetic-demo/valid --store ./runs --out /tmp/pred --overlay",
                            "Exit codes: those of `python -m trainer predict` (0 some frames processed, 2 none); "
                            "1 the weights do not verify; 2 no such job, no trainer here, or the store failed."))
def predict(
    job_name: str = JOB_ARGUMENT,
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="images, folders of images or videos",
                                       show_default=False),
    store_url: str | None = STORE_OPTION,
    out_dir: Path = typer.Option(..., "--out", help="folder for keypoints, cameras and overlays"),
    weights: str = typer.Option("best-evalai", "--weights", help=f"which weights: {', '.join(WEIGHTS)}"),
    every: int = typer.Option(1, "--every", min=1, help="a video's every Nth frame"),
    overlay: bool = typer.Option(False, "--overlay", help="also draw the pitch and keypoints on each frame"),
) -> None:
    """Run a job's trained model on new footage: pull its weights (verified), then `trainer predict`."""
    _require_trainer()
    if weights not in WEIGHTS:
        err.print(f"--weights {weights!r}: choose one of {', '.join(WEIGHTS)}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    job = _existing_job(store_url, job_name)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / f"{job_name}-{weights}.pt"
        try:
            manifest = pull_weights(job, weights, target)
        except PullError as error:
            err.print(str(error), highlight=False, markup=False)
            raise typer.Exit(RunnerExit.FAILED) from None
        out.print(f"{job_name} {weights}: {manifest.describe()} (sha256 verified)", highlight=False)
        command = [sys.executable, "-m", "trainer", "predict", str(target), *inputs, "--out", str(out_dir),
                   "--every", str(every), *(["--overlay"] if overlay else [])]
        raise typer.Exit(subprocess.run(command).returncode)


@app.command(epilog=_epilog("runner cancel demo --store ./runs", READ_CODES))
def cancel(job_name: str = JOB_ARGUMENT, store_url: str | None = STORE_OPTION) -> None:
    """Stop a job for good.

    A running session stops it gracefully at its next sync; a job no session runs now (paused,
    interrupted) is cancelled by the next session that starts on it. A finished job is left as is.
    """
    job = _existing_job(store_url, job_name)
    try:
        state = _read_state(job)
    except UnreadableState:
        state = None
    if state is not None and state.phase in (*FINISHED, "failed"):
        out.print(f"job {job_name} is already {state.phase}; nothing to cancel", highlight=False)
        return
    job.put_bytes(layout.CANCEL, json.dumps({"requested_at": datetime.now(timezone.utc).isoformat()}).encode())
    out.print(f"cancel requested for {job_name}; a running session stops it at its next sync, otherwise the next "
              "session to start on it does", highlight=False)
