"""The `runner` command line (typer). Only commands that work are listed."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

from importlib.metadata import version as package_version

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from contract.codes import RunnerExit
from contract.files import EVENTS_FILE, SUPERVISOR_LOG, TRAINER_LOG, atomic_write
from runner import layout
from runner.deadline import deadline, session_start
from runner.spec import (JobSpec, SpecError, check_store_url, dump_spec, load_spec, parse_spec_bytes,
                         placeholder_problem, same_spec)
from runner.status import (UNREADABLE, JobState, UnreadableState, describe, effective_phase, read_state,
                           shown_epoch, status_document, unreadable_document)
from runner.store import JobStore, RootMode, Store, StoreError, StoreMissing, StoreUnavailable, redact
from runner.logs import LogReader
from runner.plot import (EventParts, PlotData, PlotUnavailable, UnknownMetric, build, choose_metrics, draw, headline,
                         parse_metric_list, plural, summary)
from runner.pull import WEIGHTS, PullError, pull_checkpoint, pull_weights
from runner.supervisor import DETACHED_OUTPUT, STARTED, Supervisor
from runner.trainer_check import trainer_missing
from runner.lease import LeaseRefused
from runner.notify import ENV_VAR as NOTIFY_ENV
from runner.notify import Target, env_entries, literal_warning, masked, resolve, send
from runner.watch import decide, keep_unsent, memory_document, memory_path, recall

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
    _warn_literal_notify(spec)
    spec_shown = spec.model_copy(update={"notify": [masked(entry) for entry in spec.notify]})  # URLs are secrets
    if as_json:
        document = {
            "spec": spec_shown.model_dump(mode="json"),
            "ladder": [rung.model_dump(mode="json") for rung in spec.ladder()],
        }
        out.print_json(json.dumps(document))
        return
    out.print(f"[bold green]{spec_path} is valid[/]: job [bold]{spec.name}[/]", highlight=False)
    out.print(dump_spec(spec_shown), highlight=False, markup=False)
    out.print(_ladder_table(spec))


def _warn_literal_notify(spec: JobSpec) -> None:
    """One line when the spec's `notify` holds URLs themselves, which go to the store with it."""
    literal = literal_warning(spec.notify)
    if literal:
        err.print(f"warning: {literal}", highlight=False, markup=False)


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
    _warn_literal_notify(spec)
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


WATCH_CODES = ("Exit codes: 0 looked once (--once) or stopped with Ctrl-C; 2 no notification URL, a --notify that "
               "cannot be used, no such job, an unwritable --state file, or the store failed (with --once; a "
               "watch that keeps running says so and tries again).")


@app.command(epilog=_epilog("runner watch --store gs://my-bucket/runs --notify '${SLACK_URL}' --once", WATCH_CODES))
def watch(
    job_names: list[str] | None = typer.Argument(None, metavar="JOB", show_default=False,
                                                 help="jobs to watch; default: every job in the store"),
    store_url: str | None = STORE_OPTION,
    notify_urls: list[str] | None = typer.Option(
        None, "--notify", metavar="URL", show_default=False,
        help=f"an apprise URL, or '${{NAME}}' in single quotes to read it from the environment; repeat for more; "
             f"default: ${NOTIFY_ENV}"),
    every: float = typer.Option(60.0, "--every", min=1.0, max=86400.0, help="seconds between looks"),
    once: bool = typer.Option(False, "--once", help="look once and exit (for cron)"),
    state_path: Path | None = typer.Option(None, "--state", help="the file that remembers the phases seen; "
                                                                 "default: ~/.cache/runner/watch-HASH.json per store"),
) -> None:
    """Send one message when a job's phase changes or its heartbeat goes stale (interrupted).

    Reads the store alone, so it runs anywhere: a laptop, a cron job. The first look at a store
    only records each job's phase; after that, each change is one message, also across --once
    runs (the phases seen are kept in the --state file). A job that appears already stopped is
    reported; one that is starting or running is not. A job whose state.json is unreadable is
    skipped with one line.
    """
    targets = _watch_targets(notify_urls)
    url = _store_url(store_url)
    store = _open_store(url)
    for name in job_names or []:
        _existing_job(url, name)
    key = _store_key(url)
    path = state_path or memory_path(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"), key)
    previous = _recall(path, key)
    warned: set[str] = set()
    try:
        while True:
            try:
                previous = _watch_look(store, key, job_names, previous, targets, warned)
            except StoreError as error:
                if once:
                    raise
                err.print(_store_failure(error) + f"; looking again in {every:g} s", highlight=False, markup=False)
            else:
                _remember(path, key, previous)
            if once:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        raise typer.Exit(RunnerExit.OK) from None


def _watch_targets(notify_urls: list[str] | None) -> list[Target]:
    """The destinations of `watch`: --notify, else RUNNER_NOTIFY; one line and exit 2 without any,
    or for one that cannot be used (never quoting it: a URL is a credential)."""
    entries = ([(f"--notify[{i}]", u) for i, u in enumerate(notify_urls)] if notify_urls else
               [(f"{NOTIFY_ENV}[{i}]", e) for i, e in enumerate(env_entries(os.environ))])
    if not entries:
        _refuse(f"no notification URL: pass --notify URL (e.g. --notify '${{SLACK_URL}}' with the URL in that "
                f"variable) or set {NOTIFY_ENV}")
    targets, problems = resolve(entries, os.environ)
    for problem in problems:
        err.print(problem, highlight=False, markup=False)
    if problems:
        raise typer.Exit(EXIT_INVALID)
    return targets


def _store_key(url: str) -> str:
    """The store as the watch memory and the messages name it: a local path made absolute, so a
    cron job and a shell in another folder agree."""
    return os.path.abspath(url) if "://" not in url else url.rstrip("/")


def _recall(path: Path, key: str) -> dict[str, str] | None:
    """The phases a watch remembers for the store; None (a first look) when there are none."""
    try:
        return recall(path.read_bytes(), key)
    except FileNotFoundError:
        return None
    except OSError as error:
        _refuse(f"--state {path}: cannot read it ({error.strerror}); pass --state FILE somewhere readable")
    except ValueError as error:
        err.print(f"--state {path}: {error}; starting afresh (this look records phases and sends nothing)",
                  highlight=False, markup=False)
        return None


def _remember(path: Path, key: str, remembered: dict[str, str] | None) -> None:
    """Write the phases seen to the memory file, atomically, when they changed."""
    try:
        old = path.read_bytes()
    except OSError:
        old = None
    new = memory_document(old, key, remembered or {})
    if new == old:
        return
    try:
        atomic_write(path, new)
    except OSError as error:
        _refuse(f"--state {path}: cannot write it ({error.strerror}); pass --state FILE somewhere writable")


def _watch_look(store: Store, key: str, job_names: list[str] | None, previous: dict[str, str] | None,
                targets: list[Target], warned: set[str]) -> dict[str, str]:
    """One look at the store: read the jobs' states, send what `watch.decide` says, and return the
    phases to remember (a change whose message reached nobody is looked for again next time)."""
    now = datetime.now(timezone.utc)
    listed = None if job_names else store.list_jobs()
    states: dict[str, JobState] = {}
    for name in job_names or listed or []:
        job = store.job(name)
        try:
            state = _shown_state(job, now)
        except UnreadableState as error:
            _warn_once(warned, name, _unreadable_line(job, str(error)) + "; skipped, watching the others")
            continue
        warned.discard(name)  # said again should it break again
        if state is not None:
            states[name] = state
    look = decide(previous, states, now, key, listed)
    unsent = []
    for job_name, message in look.messages:
        failures = send(targets, message)
        for failure in failures:
            err.print(failure, highlight=False, markup=False)
        if len(failures) == len(targets):
            unsent.append(job_name)
        else:
            out.print(f"sent: {message.title}", highlight=False, markup=False)
    return keep_unsent(look.remembered, previous, unsent)


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
    warned: set[str] = set()
    reader = LogReader(job, name, lambda key, message: _warn_once(warned, key, message))
    while True:
        for data in reader.read_new():
            sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()
        if not follow or _stopped_or_wait(job, _followed_state(job, warned), "the log ends here"):
            return


# Phases in which no session writes to the log: `logs -f` and `plot --live` end on them.
STOPPED = ("done", "failed", "cancelled", "paused", "interrupted")


def _followed_state(job: JobStore, warned: set[str]) -> JobState | None:
    """The status of a job being followed; None, said once, while its state.json is unreadable."""
    try:
        return _read_state(job)
    except UnreadableState as error:
        _warn_once(warned, layout.STATE, _unreadable_line(job, str(error)) + "; following the job anyway")
        return None


def _stopped_or_wait(job: JobStore, state: JobState | None, ends: str) -> bool:
    """One turn of following a job (`logs -f`, `plot --live`): True, said on stderr with `ends`,
    once no session writes to it (STOPPED); otherwise False after one sync interval's wait."""
    phase = effective_phase(state, datetime.now(timezone.utc)) if state is not None else None
    if phase in STOPPED:
        err.print(f"job {job.name} is {phase}" + (f" ({state.reason})" if state and state.reason else "")
                  + f"; {ends}", highlight=False, markup=False)
        return True
    time.sleep(_poll_seconds(state))
    return False


def _poll_seconds(state: JobState | None) -> float:
    """How long `logs -f` waits between reads: the job's sync interval, kept within 1 s – 60 s."""
    every = state.sync_every_s if state is not None else 5.0
    return min(max(every, 1.0), 60.0) if math.isfinite(every) else 5.0


def _warn_once(warned: set[str], key: str, message: str) -> None:
    if key not in warned:
        warned.add(key)
        err.print(message, highlight=False, markup=False)


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


PLOT_CODES = ("Exit codes: 0 written (with --live: once the job stopped, or on Ctrl-C); 2 no such job, no epoch "
              "yet (without --live), a metric the job does not have, --out not writable, or the store failed.")


@app.command(epilog=_epilog("runner plot demo --store ./runs --out demo.png --metrics val_evalai,val_loss",
                            PLOT_CODES))
def plot(
    job_name: str = JOB_ARGUMENT,
    store_url: str | None = STORE_OPTION,
    out_path: Path | None = typer.Option(None, "--out", help="the PNG to write; default: ./JOB.png"),
    metrics: str | None = typer.Option(None, "--metrics", help="metrics to draw, comma-separated; default: those "
                                                               "of val_evalai, val_loss, train_loss the job has"),
    live: bool = typer.Option(False, "--live", help="look again at every sync interval, redrawing when there is "
                                                    "something new, until the job stops; Ctrl-C ends it"),
    as_json: bool = typer.Option(False, "--json", help="print what the PNG shows as one JSON line: series with "
                                                       "their points and best point, sessions, resumes, OOMs"),
) -> None:
    """A PNG of a job's metrics across all its sessions, from the store alone.

    One panel per metric over optimizer steps, with session starts, resumes and OOM step-downs
    marked and each metric's best point (max EvalAI, min loss) annotated. An epoch trained twice
    shows once, with its later value. A job with no epoch yet: nothing is written, exit 2; with
    --live a PNG saying "no epoch yet" until there is one.
    """
    try:
        asked = parse_metric_list(metrics)
    except UnknownMetric as error:
        _refuse(str(error))
    job = _existing_job(store_url, job_name)
    target = out_path or Path(f"{job_name}.png")
    warned: set[str] = set()
    parts = EventParts(job, lambda key, message: _warn_once(warned, key, message))
    drawn: tuple | None = None
    try:
        while True:
            state = _followed_state(job, warned)  # before the events: a stopped job's are all in
            data = build(parts.sessions(), state)
            if not data.series and not live:
                phase = effective_phase(state, datetime.now(timezone.utc)) if state else "without a status yet"
                _refuse(f"job {job_name} has no epoch yet ({phase}): nothing to plot; try again after its first "
                        f"epoch, or follow it with --live")
            try:
                chosen = choose_metrics(data, asked) if data.series else []
            except UnknownMetric as error:
                _refuse(str(error))
            if (data, chosen) != drawn:  # redrawn when there is something new
                _draw_plot(job_name, data, chosen, target, parts.bad_lines, as_json)
                drawn = (data, chosen)
            if not live or _stopped_or_wait(job, state, f"{target} is final"):
                return
    except KeyboardInterrupt:
        drew = f"{target} holds the last plot" if drawn is not None else "nothing was drawn"
        err.print(f"stopped following {job_name}; {drew}", highlight=False, markup=False)
        raise typer.Exit(RunnerExit.OK) from None


def _draw_plot(job_name: str, data: PlotData, metrics: list[str], target: Path, bad_lines: int,
               as_json: bool) -> None:
    """Write the PNG and say what it shows (one line, or one line of JSON)."""
    title = job_name
    if metrics:
        title += f": {plural(data.epochs, 'epoch')}, {plural(len(data.sessions), 'session')}"
    try:
        draw(data, metrics, title, target)
    except PlotUnavailable as error:
        _refuse(str(error))
    except OSError as error:
        _refuse(f"--out {target}: cannot write it ({error.strerror or error}); choose another path")
    if as_json:
        sys.stdout.write(json.dumps({**summary(data, metrics, job_name, target), "skipped_lines": bad_lines}) + "\n")
        sys.stdout.flush()
        return
    shown = headline(data, metrics) if metrics else "no epoch yet; waiting for the first"
    skipped = f" (skipped {bad_lines} line(s) that are not events)" if bad_lines else ""
    out.print(f"{target}: {job_name} {shown}{skipped}", highlight=False, markup=False)


def _refuse(message: str) -> NoReturn:
    err.print(message, highlight=False, markup=False)
    raise typer.Exit(EXIT_INVALID)


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
