"""`runner plot` on a real local store: events written by the trainer's own writer
(`contract.events.EventLog`) and uploaded as numbered parts the way runner/sync.py uploads them;
the PNG read back with matplotlib. The tests marked e2e run the real `runner` console script."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from matplotlib.image import imread

from contract.events import EPOCH, OOM, START, EventLog
from contract.files import EVENTS_FILE
from runner import layout
from runner.plot import LIMIT, EventParts, PlotData, Point, build, choose_metrics, draw
from runner.spec import dump_spec, parse_spec
from runner.status import JobState, read_state
from runner.store import JobStore, Store
from tests.file_tree import tree

RUNNER = shutil.which("runner")


def needs_cli(test: Callable) -> Callable:
    """A test of the real `runner` console script (marked e2e, as the CLI tests here are)."""
    return pytest.mark.e2e(pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")(test))


RUNG_4 = {"batch_size": 4, "input_size": [128, 72], "accumulation": 1, "activation_checkpointing": False}
RUNG_2 = {"batch_size": 2, "input_size": [128, 72], "accumulation": 2, "activation_checkpointing": False}
JOB = "j"


def png_rows(path: Path) -> int:
    """How many metric panels a PNG of `draw` holds: its height is (1.2 + 2.6 × panels) inches at 100 dpi."""
    height, width, _ = imread(path).shape
    assert width == 1000 and (height - 120) % 260 == 0, (height, width)
    return (height - 120) // 260


class WorkDir:
    """A session's work dir as the trainer writes it, and the parts a session uploads from it:
    the complete lines since its last upload, numbered from 1 under its own session folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events = EventLog(path / EVENTS_FILE)

    def upload(self, job: JobStore, session: str, offsets: dict[str, int]) -> None:
        data = (self.path / EVENTS_FILE).read_bytes()
        chunk = data[offsets.get(session, 0):]
        if not chunk:
            return
        part = sum(1 for p in job.list(f"{layout.LOGS}/{session}") if p.startswith(EVENTS_FILE)) + 1
        job.put_bytes(layout.log_key(session, f"{EVENTS_FILE}.{part:06d}"), chunk)
        offsets[session] = len(data)


def epoch(log: EventLog, index: int, evalai: float, loss: float) -> None:
    log.emit(EPOCH, epoch=index, step=10 * (index + 1), lr=1e-3,
             metrics={"train_loss": loss / 2, "val_loss": loss, "val_evalai": evalai, "val_pck@5": evalai / 2})


def state_document(phase: str, **more: object) -> dict:
    return {"job": JOB, "phase": phase, "epoch": 4, "max_epochs": 4, "step": 40, "sync_every_s": 1.0,
            "heartbeat_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
            "sessions": [{"id": "s1", "host": "a", "gpu": "Tesla T4", "started_at": "2026-01-01T00:00:00+00:00",
                          "ended_at": "2026-01-01T01:00:00+00:00", "end_reason": "lost"},
                         {"id": "s2", "host": "a", "gpu": "Tesla T4", "started_at": "2026-01-01T02:00:00+00:00"}],
            **more}


def two_sessions(tmp_path: Path) -> tuple[Path, JobStore]:
    """Job `j`: session s1 OOMs on batch 4, trains epochs 0-2 on batch 2 and is cut off before
    epoch 2's checkpoint reached the store; s2, on the same machine, uploads the kept
    events.jsonl again under its own folder, resumes at epoch 2 and trains epochs 2-3. Plus what a
    store may hold besides: a part that is not events, a folder whose name is not a session id."""
    store = tmp_path / "store"
    job = Store(str(store)).job(JOB)
    job.put_bytes(layout.SPEC, dump_spec(parse_spec({"name": JOB, "store": str(store)})).encode())
    job.put_bytes(layout.STATE, json.dumps(state_document("done", reason="max_epochs")).encode())
    work = WorkDir(tmp_path / "work")
    offsets: dict[str, int] = {}
    work.events.emit(START, epoch=0, step=0, samples=0, rung=RUNG_4, device="cpu")
    work.events.emit(OOM, rung=RUNG_4, message="CUDA out of memory")
    work.events.emit(START, epoch=0, step=0, samples=0, rung=RUNG_2, device="cpu")
    epoch(work.events, 0, 0.1, 0.9)
    work.upload(job, "s1", offsets)
    epoch(work.events, 1, 0.3, 0.7)
    epoch(work.events, 2, 0.2, 0.8)
    work.upload(job, "s1", offsets)
    job.put_bytes(layout.log_key("s1", f"{EVENTS_FILE}.000003"), b"\x00\xff not events\n{\"kind\": 7}\n")
    work.events.emit(START, epoch=2, step=20, samples=0, rung=RUNG_2, device="cpu")
    epoch(work.events, 2, 0.25, 0.75)
    epoch(work.events, 3, 0.4, 0.6)
    work.upload(job, "s2", offsets)
    odd = store / JOB / layout.LOGS / "a b"
    odd.mkdir()
    (odd / f"{EVENTS_FILE}.000001").write_text(json.dumps({"t": 0, "kind": "epoch", "epoch": 9, "step": 99,
                                                           "metrics": {"val_loss": 9.0}}) + "\n")
    return store, job


def test_the_events_of_two_sessions_become_a_png(tmp_path: Path) -> None:
    store, job = two_sessions(tmp_path)
    skipped: list[tuple[str, str]] = []
    parts = EventParts(job, lambda key, message: skipped.append((key, message)))
    sessions = parts.sessions()
    assert [name for name, _ in sessions] == ["s1", "s2"]
    assert skipped == [("logs/a b", "skipped log folder 'j/logs/a b': not a session id")]
    assert parts.bad_lines == 2
    data = build(sessions, read_state(job.get_bytes(layout.STATE)))
    assert [(p.epoch, p.value) for p in data.series["val_evalai"]] == [(0, 0.1), (1, 0.3), (2, 0.25), (3, 0.4)]
    assert [(m.session, m.step, m.label) for m in data.sessions] == [
        ("s1", 0, "session 1 (Tesla T4)"), ("s2", 20, "session 2 (Tesla T4)")]
    assert [m.step for m in data.resumes] == [0, 20]
    assert [(o.step, o.old, o.new) for o in data.ooms] == [(0, "batch 4 128x72", "batch 2 128x72")]
    metrics = choose_metrics(data, None)
    out = tmp_path / "plots" / "j.png"
    before = tree(store)
    draw(data, metrics, "j", out)
    assert png_rows(out) == 3
    draw(data, [*metrics, "lr", "val_pck@5"], "j", out)
    assert png_rows(out) == 5
    assert sorted(p.name for p in out.parent.iterdir()) == ["j.png"]  # no temp file left beside it
    assert tree(store) == before  # reading changed nothing


def test_a_part_is_read_once_and_new_parts_are_added(tmp_path: Path) -> None:
    """Parts never change once written: `--live` fetches only the new ones."""
    _, job = two_sessions(tmp_path)
    parts = EventParts(job, lambda key, message: None)
    first = build(parts.sessions())
    job.put_bytes(layout.log_key("s2", f"{EVENTS_FILE}.000001"), b"rewritten\n")
    job.put_bytes(layout.log_key("s2", f"{EVENTS_FILE}.000002"), json.dumps(
        {"t": 1, "kind": "epoch", "epoch": 4, "step": 50, "metrics": {"val_evalai": 0.5}}).encode() + b"\n")
    second = build(parts.sessions())
    assert [p.epoch for p in second.series["val_evalai"]] == [p.epoch for p in first.series["val_evalai"]] + [4]
    assert parts.bad_lines == 2


def test_no_epoch_yet_and_odd_values_still_draw(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    draw(PlotData(), [], "j", empty)
    assert png_rows(empty) == 1
    state = JobState(job=JOB, sessions=[{"id": "s1", "host": "h", "gpu": "$\\frac{GPU}{0}$\x07",
                                         "started_at": "2026-01-01T00:00:00+00:00"}])
    events = [{"t": 1, "kind": START, "epoch": 0, "step": 0, "rung": RUNG_2},
              {"t": 2, "kind": EPOCH, "epoch": 0, "step": 1, "lr": -1.0, "metrics": {"val_loss": LIMIT}},
              {"t": 3, "kind": EPOCH, "epoch": 1, "step": 2, "lr": 0.0, "metrics": {"val_loss": -LIMIT}},
              {"t": 4, "kind": EPOCH, "epoch": 2, "step": 3, "lr": 1.0, "metrics": {"val_loss": 1e308}}]
    data = build([("s1", events)], state)
    assert data.best("val_loss") == Point(1, 2, -LIMIT)
    assert len(data.series["val_loss"]) == 2  # beyond LIMIT: left out
    odd = tmp_path / "odd.png"
    draw(data, ["val_loss", "lr"], "j $x$", odd)
    assert png_rows(odd) == 2


# -- the real CLI ----------------------------------------------------------------------------------


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([RUNNER, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                            env={**os.environ, "COLUMNS": "200"}, errors="replace")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@needs_cli
def test_runner_plot_writes_the_png_and_says_what_it_shows(tmp_path: Path) -> None:
    store, _ = two_sessions(tmp_path)
    shown = runner("plot", JOB, "--store", str(store), "--out", str(tmp_path / "x.png"), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert [(s["metric"], s["points"]) for s in document["series"]] == [
        ("val_evalai", 4), ("val_loss", 4), ("train_loss", 4)]
    assert (document["epochs"], document["sessions"], len(document["ooms"]), document["skipped_lines"]) == (4, 2, 1, 2)
    assert document["series"][0]["best"] == {"epoch": 4, "step": 40, "value": 0.4}
    assert png_rows(tmp_path / "x.png") == 3
    assert "skipped log folder 'j/logs/a b'" in one_line(shown.stderr)

    default = runner("plot", JOB, "--store", str(store), "--metrics", "val_loss,val_pck@5", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == ("j.png: j val_loss, val_pck@5 over 4 epochs (steps 10–40), 2 sessions, "
                                      "1 OOM step-down (skipped 2 line(s) that are not events)")
    assert png_rows(tmp_path / "j.png") == 2


@needs_cli
def test_runner_plot_refuses_in_one_line(tmp_path: Path) -> None:
    store, job = two_sessions(tmp_path)
    unknown = runner("plot", JOB, "--store", str(store), "--metrics", "val_loss,val_evalia", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "--metrics: 'val_evalia' not among this job's metrics: lr, train_loss, val_evalai, val_loss, val_pck@5")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    unwritable = runner("plot", JOB, "--store", str(store), "--out", str(folder), cwd=tmp_path)
    assert unwritable.returncode == 2 and "--out" in unwritable.stderr.strip().splitlines()[-1]

    fresh = Store(str(store)).job("fresh")
    fresh.put_bytes(layout.SPEC, dump_spec(parse_spec({"name": "fresh", "store": str(store)})).encode())
    nothing = runner("plot", "fresh", "--store", str(store), cwd=tmp_path)
    assert nothing.returncode == 2
    assert one_line(nothing.stderr).startswith("job fresh has no epoch yet (without a status yet): nothing to plot")
    assert not (tmp_path / "fresh.png").exists()
    missing = runner("plot", "nope", "--store", str(store), cwd=tmp_path)
    assert missing.returncode == 2 and "no job 'nope'" in one_line(missing.stderr)


@needs_cli
def test_live_ends_with_the_job_and_draws_no_epoch_yet(tmp_path: Path) -> None:
    store, job = two_sessions(tmp_path)
    done = runner("plot", JOB, "--store", str(store), "--live", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "job j is done (max_epochs); j.png is final"
    assert png_rows(tmp_path / "j.png") == 3

    failed = Store(str(store)).job("failed")
    failed.put_bytes(layout.SPEC, dump_spec(parse_spec({"name": "failed", "store": str(store)})).encode())
    failed.put_bytes(layout.STATE, json.dumps({**state_document("failed"), "job": "failed"}).encode())
    placeholder = runner("plot", "failed", "--store", str(store), "--live", cwd=tmp_path)
    assert placeholder.returncode == 0, placeholder.stderr
    assert placeholder.stdout.strip() == "failed.png: failed no epoch yet; waiting for the first"
    assert png_rows(tmp_path / "failed.png") == 1


def lines_of(proc: subprocess.Popen) -> queue.Queue:
    """The process's stdout, line by line, read in a thread: a test waits for a line with a timeout."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@needs_cli
def test_live_redraws_as_epochs_arrive_and_ctrl_c_ends_it(tmp_path: Path) -> None:
    store, job = two_sessions(tmp_path)
    job.put_bytes(layout.STATE, json.dumps(state_document("running")).encode())  # its heartbeat holds for an hour
    args = [RUNNER, "plot", JOB, "--store", str(store), "--live", "--json"]
    follow = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = lines_of(follow)
        assert json.loads(lines.get(timeout=60))["epochs"] == 4
        job.put_bytes(layout.log_key("s2", f"{EVENTS_FILE}.000002"), json.dumps(
            {"t": 1, "kind": "epoch", "epoch": 4, "step": 50, "metrics": {"val_evalai": 0.5, "val_loss": 0.5,
                                                                          "train_loss": 0.2}}).encode() + b"\n")
        redrawn = json.loads(lines.get(timeout=60))
        assert redrawn["epochs"] == 5 and redrawn["series"][0]["best"]["epoch"] == 5
        job.put_bytes(layout.STATE, json.dumps(state_document("paused", reason="session limit")).encode())
        assert follow.wait(timeout=60) == 0
        assert follow.stderr.read().strip().splitlines()[-1] == "job j is paused (session limit); j.png is final"
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()

    job.put_bytes(layout.STATE, json.dumps(state_document("running")).encode())
    interrupted = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(lines_of(interrupted).get(timeout=60))["epochs"] == 5
        interrupted.send_signal(signal.SIGINT)
        assert interrupted.wait(timeout=60) == 0
        stderr = interrupted.stderr.read()
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines() == ["skipped log folder 'j/logs/a b': not a session id",
                                               "stopped following j; j.png holds the last plot"]
        assert png_rows(tmp_path / "j.png") == 3
    finally:
        if interrupted.poll() is None:
            interrupted.kill()
            interrupted.wait()
