"""One TensorBoard run per job (issue 13), read with TensorBoard's own readers: a job of three
sessions through the real CLI, the first two cut off (kill -9 of the supervisor's process group)
each with epochs logged past the newest checkpoint in the store, each later session on a fresh
work dir, the third run to `done`.

Every session's event files go to the one folder `STORE/JOB/tensorboard/`, so a reader over the
job finds one run, and in it one point per epoch, 1 to max_epochs: the epochs a cut-off session
logged after its last checkpoint are trained and logged again by the next session, whose files
come later in TensorBoard's (file name) order and purge them (the trainer's purge_step). Earlier
sessions' files are left as they were.

The real `runner` CLI, real supervisor and trainer processes, jobs/demo.yaml made small, a
local store, the CPU.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Literal

import pytest
import yaml
from tensorboard.backend.event_processing import event_multiplexer, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

from contract.files import TENSORBOARD_DIR
from runner import layout
from runner.store import JobStore, Store
from tests.e2e.test_runner import kill_group, runner, start, state_of, wait_until

pytestmark = pytest.mark.e2e

DEMO = Path(__file__).resolve().parents[2] / "jobs" / "demo.yaml"
JOB = "tb"
MAX_EPOCHS = 12
# Checkpoints at every 4th epoch only, while scalars are logged at every epoch: a session cut off
# between the two leaves epochs in the store's event files that the next session trains again.
EVERY_EPOCHS = 4
SESSION_TIMEOUT_S = 120  # a hang guard; a session of this job takes seconds

Point = tuple[str, int, float]  # tag, step (epoch + 1), wall time
Scalar = tuple[int, float]  # step, wall time: one point of a tag's curve


def demo_spec(path: Path, store: str) -> Path:
    """jobs/demo.yaml with a tiny data set and input, more epochs, and sparse checkpoints."""
    spec = yaml.safe_load(DEMO.read_text())
    spec["name"], spec["store"] = JOB, store
    spec["data"].update(frames=8, valid_frames=4, num_workers=0)
    spec["train"].update(input_size=[128, 72], max_epochs=MAX_EPOCHS, early_stopping_epochs=MAX_EPOCHS)
    spec["oom"]["input_sizes"] = [[128, 72], [96, 64]]
    spec["checkpoint"] = {"every_minutes": 60, "every_epochs": EVERY_EPOCHS}
    spec["sync"] = {"every_seconds": 1.0}
    path.write_text(yaml.safe_dump(spec))
    return path


def event_files(folder: Path) -> list[Path]:
    """The event files in a TensorBoard folder, in the order TensorBoard reads them (a dot name is
    an upload in flight, left by a session killed during it)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and "tfevents" in p.name and not p.name.startswith("."))


def logged(path: Path) -> list[Point]:
    """Each scalar one file holds, as written: no purging, no reading across files."""
    return [(value.tag, event.step, event.wall_time)
            for event in LegacyEventFileLoader(str(path)).Load() for value in event.summary.value]


def read_run(job_folder: Path, reader: Literal["server", "legacy"]) -> tuple[list[str], dict[str, list[Scalar]]]:
    """The runs TensorBoard finds under the job's folder, and the one run's scalars (tag → (step,
    wall time) points), as TensorBoard's own reader resolves them, with its defaults (which purge
    orphaned data). `server`: the reader `tensorboard --load_fast=false` serves from, which
    ignores a run's first restart marker; `legacy`: the EventMultiplexer of older TensorBoards
    and scripts."""
    if reader == "server":
        multiplexer = plugin_event_multiplexer.EventMultiplexer()
    else:
        multiplexer = event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(job_folder))
    multiplexer.Reload()
    runs = sorted(multiplexer.Runs())
    if runs != [layout.TENSORBOARD]:
        return runs, {}
    run = multiplexer.GetAccumulator(layout.TENSORBOARD)
    if reader == "server":
        return runs, {tag: [(e.step, e.wall_time) for e in run.Tensors(tag)] for tag in run.Tags()["tensors"]}
    return runs, {tag: [(e.step, e.wall_time) for e in run.Scalars(tag)] for tag in run.Tags()["scalars"]}


def newest_checkpoint_epoch(job: JobStore) -> int:
    """The epochs completed at the store's newest checkpoint (its manifest's `epoch`); 0 without one."""
    epochs = [int(json.loads(job.get_bytes(f"{layout.CHECKPOINTS}/{name}") or b"{}")["epoch"])
              for name in job.list(layout.CHECKPOINTS) if (layout.parse_checkpoint_name(name) or (0, ""))[1] == "json"]
    return max(epochs, default=0)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in event_files(folder)}


def cut_off_once_ahead(proc: subprocess.Popen, folder: Path, job: JobStore, earlier: dict[str, bytes], after_epoch: int,
                       session: str) -> None:
    """Kill -9 the session once the store has its own event files logging an epoch past the
    store's newest checkpoint, and that checkpoint is past `after_epoch` (the session trained and
    uploaded work of its own)."""
    def ahead() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{session} exited with {proc.returncode} before it could be cut off:\n{proc.stdout.read()}")
        # the event files first: a checkpoint the same tick uploads then counts against them
        steps = [step for path in event_files(folder) if path.name not in earlier
                 for tag, step, _ in logged(path) if tag == "val_loss"]
        newest = newest_checkpoint_epoch(job)
        return newest > after_epoch and max(steps, default=0) > newest

    try:
        wait_until(ahead, timeout=SESSION_TIMEOUT_S, what=f"{session}: an epoch logged past the newest checkpoint")
    finally:
        if proc.poll() is None:
            kill_group(proc)


def test_three_sessions_one_cut_off_after_another_make_one_tensorboard_run(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    job = Store(store).job(JOB)
    folder = Path(store) / JOB / layout.TENSORBOARD
    spec = demo_spec(tmp_path / "demo.yaml", store)

    first = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    cut_off_once_ahead(first, folder, job, {}, 0, "session 1")
    after_first = snapshot(folder)
    first_checkpoint = newest_checkpoint_epoch(job)

    second = start("attach", JOB, "--store", store, "--workdir", str(tmp_path / "w2"), "--take-over", cwd=tmp_path)
    cut_off_once_ahead(second, folder, job, after_first, first_checkpoint, "session 2")
    after_second = snapshot(folder)

    third = runner("attach", JOB, "--store", store, "--workdir", str(tmp_path / "w3"), "--take-over", cwd=tmp_path,
                   timeout=SESSION_TIMEOUT_S)
    assert third.returncode == 0, third.stdout + third.stderr
    state = state_of(store, JOB)
    assert (state["phase"], state["reason"], state["epoch"]) == ("done", "max_epochs", MAX_EPOCHS), state
    assert [s["end_reason"] for s in state["sessions"]] == ["lost", "lost", "done"]

    # each session's files are its own, in the one folder, and later sessions left them as they were
    after_third = snapshot(folder)
    sessions = [set(after_first), set(after_second) - set(after_first), set(after_third) - set(after_second)]
    assert all(sessions), f"a session has no event file of its own in {folder}: {sessions}"
    assert {name: after_third[name] for name in after_second} == after_second, "an earlier session's file changed"
    assert not any(TENSORBOARD_DIR in job.list_dirs(f"{layout.LOGS}/{s}") for s in job.list_dirs(layout.LOGS)), \
        "event files still go to the session's log folder"

    # TensorBoard over the job's folder: one run, one point per epoch, each epoch's last logging
    raw = {path.name: logged(path) for path in event_files(folder)}
    val_loss = {name: [(step, t) for tag, step, t in points if tag == "val_loss"] for name, points in raw.items()}
    twice = [step for step in range(1, MAX_EPOCHS + 1)
             if sum(step in {s for s, _ in points} for points in val_loss.values()) > 1]
    assert twice, f"no epoch was logged twice: the sessions were not cut off past a checkpoint ({val_loss})"
    for reader in ("server", "legacy"):
        runs, scalars = read_run(Path(store) / JOB, reader)
        assert runs == [layout.TENSORBOARD], f"{reader}: runs {runs}"
        assert {"val_loss", "train_loss", "lr"} <= set(scalars), f"{reader}: tags {sorted(scalars)}"
        for tag, points in scalars.items():
            assert [step for step, _ in points] == list(range(1, MAX_EPOCHS + 1)), f"{reader}, {tag}: {points}"
            for step, wall_time in points:
                written = [t for name, logs in raw.items() for (g, s, t) in logs if (g, s) == (tag, step)]
                assert wall_time == max(written), f"{reader}, {tag} at {step}: not the epoch's last logging"
        # the epochs logged twice were resolved; the points kept come from all three sessions
        kept = set(scalars["val_loss"])
        contributing = [i for i, names in enumerate(sessions, 1) if any(kept & set(val_loss[n]) for n in names)]
        assert contributing == [1, 2, 3], f"{reader}: the run's val_loss points come from sessions {contributing}"


def test_runner_logs_reads_a_store_with_event_files_in_session_log_folders(tmp_path: Path) -> None:
    """Stores written before the one-run layout have event files under `logs/SESSION/tensorboard/`:
    `runner logs` still prints the trainer's log from them, and nothing of the event files."""
    store = str(tmp_path / "store")
    job = Store(store).job(JOB)
    job.put_bytes(layout.SPEC, demo_spec(tmp_path / "demo.yaml", store).read_bytes())
    job.put_bytes(layout.log_key("s-1", "trainer.log.000001"), b"epoch 1/12 done\n")
    job.put_bytes(layout.log_key("s-1", f"{TENSORBOARD_DIR}/events.out.tfevents.1700000000.host.42.0"), b"\0" * 64)
    job.put_bytes(layout.log_key("s-2", "trainer.log.000001"), b"epoch 2/12 done\n")
    shown = runner("logs", JOB, "--store", store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "epoch 1/12 done\nepoch 2/12 done\n"
