"""The `runner` command line (typer). Only commands that work are listed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from contract.codes import RunnerExit
from contract.files import EVENTS_FILE, TRAINER_LOG
from runner import layout
from runner.deadline import deadline, session_start
from runner.spec import JobSpec, SpecError, check_store_url, dump_spec, load_spec, parse_spec_text, same_spec
from runner.status import JobState, describe, effective_phase, status_document
from runner.store import JobStore, Store, StoreError
from runner.supervisor import Supervisor
from runner.lease import LeaseRefused

app = typer.Typer(
    help="A resumable job runner for preemptible GPUs.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_INVALID = RunnerExit.INVALID


@app.callback()
def main() -> None:
    """A resumable job runner for preemptible GPUs: validate, run and resume training jobs."""


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


@app.command()
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

STORE_OPTION = typer.Option(None, "--store", help="store URL; default: $RUNNER_STORE, then the spec's store")
WORKDIR_OPTION = typer.Option(None, "--workdir", help="local work dir; default: ./.runner/JOB")


def _store_url(option: str | None, spec: JobSpec | None = None) -> str:
    url = option or os.environ.get("RUNNER_STORE") or (spec.store if spec else None)
    if not url:
        err.print("no store given: pass --store URL or set RUNNER_STORE", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    return url


def _open_store(url: str) -> Store:
    try:
        check_store_url(url)
    except ValueError as error:
        err.print(f"store: {error}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    return Store(url)


def _load_or_exit(spec_path: Path) -> JobSpec:
    try:
        return load_spec(spec_path)
    except SpecError as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None


def _supervise(spec: JobSpec, store: JobStore, workdir: Path | None, take_over: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # a skipped overlapping tick is expected
    supervisor = Supervisor(spec, store, workdir or Path(".runner") / spec.name, take_over=take_over)
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
    out.print(f"job {spec.name}: {state.phase}" + (f" ({state.reason})" if state.reason else ""), highlight=False)
    raise typer.Exit(code)


@app.command()
def submit(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec YAML"),
    store_url: str | None = STORE_OPTION,
    workdir: Path | None = WORKDIR_OPTION,
    detach: bool = typer.Option(False, "--detach", help="run the supervisor in the background"),
    force_spec: bool = typer.Option(False, "--force-spec", help="replace the stored spec of an existing job"),
    take_over: bool = typer.Option(False, "--take-over", help="take the job from a session that still holds it"),
) -> None:
    """Run a job: validate, lease, restore, prepare data, train, sync. Resubmitting resumes it."""
    spec = _load_or_exit(spec_path)
    url = _store_url(store_url, spec)
    job = _open_store(url).job(spec.name)
    stored = job.get_bytes(layout.SPEC)
    if stored is not None and not same_spec(stored, spec) and not force_spec:
        err.print(f"job {spec.name} already exists in {url} with a different spec; resubmit the same spec to "
                  "resume it, `runner attach` it, or pass --force-spec to replace the spec", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    if spec.session.max_hours is not None:
        left = _session_left_minutes(spec)
        if left < spec.checkpoint.every_minutes:
            err.print(f"warning: {left:.0f} min left in this session, less than one checkpoint interval "
                      f"({spec.checkpoint.every_minutes:g} min)", highlight=False)
    if detach:
        workdir = workdir or Path(".runner") / spec.name
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "supervisor.log"
        cmd = [sys.executable, "-m", "runner", "submit", str(spec_path), "--store", url, "--workdir", str(workdir)]
        if force_spec:
            cmd.append("--force-spec")
        if take_over:
            cmd.append("--take-over")
        with log_path.open("a") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, start_new_session=True)
        out.print(f"job {spec.name} submitted (supervisor pid {proc.pid}, log {log_path}); "
                  f"follow it with `runner status {spec.name} --store {url}`", highlight=False)
        return
    _supervise(spec, job, workdir, take_over)


def _session_left_minutes(spec: JobSpec) -> float:
    now = datetime.now(timezone.utc)
    end = deadline(session_start(spec.session.start, now), spec.session.max_hours, spec.session.margin_minutes)
    return (end - now).total_seconds() / 60 if end else float("inf")


@app.command()
def attach(
    job_name: str = typer.Argument(..., metavar="JOB"),
    store_url: str | None = STORE_OPTION,
    workdir: Path | None = WORKDIR_OPTION,
    take_over: bool = typer.Option(False, "--take-over", help="take the job from a session that still holds it"),
) -> None:
    """Resume a job from the store on this machine, with the store's spec: no local file needed."""
    job = _open_job(store_url, job_name)
    data = job.get_bytes(layout.SPEC)
    if data is None:
        err.print(f"no job {job_name!r} in {job.url}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    try:
        spec = parse_spec_text(data.decode(), f"{job_name}/spec.yaml")
    except SpecError as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    _supervise(spec, job, workdir, take_over)


def _open_job(store_url: str | None, job_name: str) -> JobStore:
    try:
        layout.check_job(job_name)
    except layout.UnsafeName as error:
        err.print(str(error), highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    return _open_store(_store_url(store_url)).job(job_name)


@app.command()
def status(
    job_name: str | None = typer.Argument(None, metavar="[JOB]"),
    store_url: str | None = STORE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print state.json (with the derived phase) as JSON"),
) -> None:
    """Where a job stands (or every job in the store), read from the store alone."""
    now = datetime.now(timezone.utc)
    if job_name is None:
        store = _open_store(_store_url(store_url))
        states = [s for s in (_read_state(store.job(name)) for name in store.list_jobs()) if s is not None]
        if as_json:
            out.print_json(json.dumps([status_document(s, now) for s in states]))
            return
        table = Table(title=f"jobs in {store.url}")
        for column in ("job", "phase", "epoch", "step", "samples/s", "heartbeat"):
            table.add_column(column)
        for s in states:
            table.add_row(s.job, effective_phase(s, now), f"{s.epoch}/{s.max_epochs}", str(s.step),
                          f"{s.samples_per_s:.1f}" if s.samples_per_s else "-", s.heartbeat_at or "never")
        out.print(table)
        return
    job = _open_job(store_url, job_name)
    state = _read_state(job)
    if state is None:
        err.print(f"no status for job {job_name!r} in {job.url}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    if as_json:
        out.print_json(json.dumps(status_document(state, now)))
        return
    table = Table(title=f"job {job_name}", show_header=False)
    for key, value in describe(state, now):
        table.add_row(key, value)
    out.print(table)


def _read_state(job: JobStore) -> JobState | None:
    """The job's status; a state.json that does not parse is reported in one line and skipped."""
    data = job.get_bytes(layout.STATE)
    if data is None:
        return None
    try:
        return JobState.model_validate_json(data)
    except ValidationError as error:
        err.print(f"job {job.name}: state.json is unreadable ({error.error_count()} problem(s), first: "
                  f"{error.errors()[0]['msg']}); skipped", highlight=False, markup=False)
        return None


@app.command("ls")
def list_jobs(store_url: str | None = STORE_OPTION) -> None:
    """The jobs in a store, one per line."""
    for name in _open_store(_store_url(store_url)).list_jobs():
        out.print(name, highlight=False)


@app.command()
def logs(
    job_name: str = typer.Argument(..., metavar="JOB"),
    store_url: str | None = STORE_OPTION,
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new lines as they arrive"),
    events: bool = typer.Option(False, "--events", help="events.jsonl instead of trainer.log"),
) -> None:
    """The trainer's log across all sessions, from the store."""
    job = _open_job(store_url, job_name)
    name = EVENTS_FILE if events else TRAINER_LOG
    printed: set[str] = set()
    while True:
        for key in _log_parts(job, name):
            if key not in printed:
                sys.stdout.write((job.get_bytes(key) or b"").decode(errors="replace"))
                printed.add(key)
        sys.stdout.flush()
        state = _read_state(job)
        if not follow or (state is not None and state.phase in ("done", "failed", "cancelled", "paused")):
            return
        time.sleep(state.sync_every_s if state else 5.0)


def _log_parts(job: JobStore, name: str) -> list[str]:
    keys = []
    for session in job.list_dirs(layout.LOGS):
        parts = sorted(p for p in job.list(f"{layout.LOGS}/{session}") if p.startswith(f"{name}."))
        keys += [layout.log_key(session, p) for p in parts]
    return keys


@app.command()
def cancel(job_name: str = typer.Argument(..., metavar="JOB"), store_url: str | None = STORE_OPTION) -> None:
    """Ask the job's supervisor to stop gracefully; it sees the request on its next tick."""
    job = _open_job(store_url, job_name)
    if job.get_bytes(layout.SPEC) is None:
        err.print(f"no job {job_name!r} in {job.url}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    job.put_bytes(layout.CANCEL, json.dumps({"requested_at": datetime.now(timezone.utc).isoformat()}).encode())
    out.print(f"cancel requested for {job_name}; the supervisor stops it at its next sync", highlight=False)
