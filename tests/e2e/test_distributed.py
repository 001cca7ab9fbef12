"""`python -m trainer train --nproc-per-node 2` (issue 13, DESIGN §9): torchrun and DDP on the gloo
backend, two CPU processes, as the runner launches them: real subprocesses, real signals.

The same tiny data and model as tests/e2e/test_trainer.py, batch 2 per process (4 in all).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contract.codes import FAULT_OOM_ABOVE, FAULT_RANK, TrainerExit
from contract.events import read_events
from tests.e2e.test_runner import final_weights as stored_weights
from tests.e2e.test_runner import runner, state_of, write_spec
from tests.e2e.test_trainer import checkpoint_paths, final_weights, kinds, make_config, wait_for_checkpoints

pytestmark = pytest.mark.e2e

PROCESSES = 2
HANG_GUARD_S = 300  # a hang fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, frames, seed in (("train", 12, 1), ("valid", 4, 2)):
        subprocess.run([sys.executable, "-m", "trainer", "synth", str(root / split), "--frames", str(frames),
                        "--seed", str(seed)], check=True, capture_output=True)
    return root


def config(data: Path, path: Path, **overrides: object) -> Path:
    return make_config(data, path, **{"rung.batch_size": 2, **overrides})


def launch(config: Path, work: Path, resume: Path | None = None, env: dict | None = None,
           processes: int = PROCESSES) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "trainer", "train", "--config", str(config), "--workdir", str(work),
           "--nproc-per-node", str(processes)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    return proc.returncode, stderr


def descendants(pid: int) -> list[int]:
    """Every process below `pid`: torchrun starts each rank in a session of its own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rank_pid(launcher: int, rank: int) -> int:
    for pid in descendants(launcher):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" + str(rank).encode() in environ:
            return pid
    raise AssertionError(f"no rank {rank} below {launcher}")


def kill_everything(proc: subprocess.Popen) -> None:
    """A machine that dies: launcher and ranks frozen first, so none sees another go, then killed."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ddp-uninterrupted")
    code, stderr = finish(launch(config(data, work / "config.yaml"), work))
    assert code == 0, stderr
    return work


def test_rank_zero_alone_writes_and_every_rank_reports(uninterrupted: Path) -> None:
    events = read_events(uninterrupted / "events.jsonl")
    assert [e["kind"] for e in events].count("start") == 1 and events[-1]["kind"] == "done"
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert len(epochs) == 3  # one line per epoch: the other rank writes no events
    progress = [e for e in events if e["kind"] == "progress"]
    assert progress[-1]["epoch_samples"] == 12  # both ranks' samples: 3 steps of 2 x 2
    assert progress[-1]["steps_per_epoch"] == 3
    assert sorted(p.name for p in (uninterrupted / "ranks").iterdir()) == ["rank-0", "rank-1"]
    assert {p.read_text() for p in (uninterrupted / "ranks").iterdir()} == {"0"}
    assert "rank 1" not in (uninterrupted / "trainer.log").read_text()


def test_two_processes_killed_and_resumed_end_bit_identical(data: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """Killed -9 (launcher and ranks) at random checkpoints and resumed, a two-process run ends
    with the same weights, bit for bit, as one never killed."""
    cfg = config(data, tmp_path / "config.yaml")
    rng = random.Random(99)
    resume = None
    for target in sorted(rng.sample(range(1, 9), 2)):
        proc = launch(cfg, tmp_path, resume=resume)
        wait_for_checkpoints(tmp_path, target, proc)
        kill_everything(proc)
        resume = checkpoint_paths(tmp_path)[-1]
    code, stderr = finish(launch(cfg, tmp_path, resume=resume))
    assert code == 0, stderr
    assert kinds(tmp_path).count("start") == 3
    expected, got = final_weights(uninterrupted), final_weights(tmp_path)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{key} differs after resume"


def test_sigterm_stops_both_ranks_at_one_step_with_one_checkpoint(data: Path, tmp_path: Path) -> None:
    cfg = config(data, tmp_path / "config.yaml", **{"train.max_epochs": 50, "checkpoint.every_minutes": 60})
    proc = launch(cfg, tmp_path)
    wait_for_checkpoints(tmp_path, 1, proc)  # the end of epoch 1
    before = len(checkpoint_paths(tmp_path))
    proc.send_signal(signal.SIGTERM)
    code, stderr = finish(proc)
    assert code == TrainerExit.STOPPED, stderr
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["kind"] == "done" and events[-1]["reason"] == "stopped"
    assert len(checkpoint_paths(tmp_path)) == before + 1
    assert events[-2]["kind"] == "checkpoint" and events[-2]["step"] == events[-1]["step"]
    assert {p.read_text() for p in (tmp_path / "ranks").iterdir()} == {str(int(TrainerExit.STOPPED))}


def test_an_oom_on_one_rank_ends_all_ranks_with_75(data: Path, tmp_path: Path) -> None:
    proc = launch(config(data, tmp_path / "config.yaml"), tmp_path, env={FAULT_OOM_ABOVE: "1", FAULT_RANK: "1"})
    code, stderr = finish(proc)
    assert code == TrainerExit.OOM, stderr
    assert (tmp_path / "ranks" / "rank-1").read_text() == str(int(TrainerExit.OOM))
    assert "CUDA out of memory" in stderr
    assert not checkpoint_paths(tmp_path)


def test_a_killed_rank_ends_the_other_without_a_hang(data: Path, tmp_path: Path) -> None:
    cfg = config(data, tmp_path / "config.yaml", **{"train.max_epochs": 50})
    proc = launch(cfg, tmp_path)
    wait_for_checkpoints(tmp_path, 2, proc)
    os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
    code, stderr = finish(proc)  # the hang guard fails the test if rank 0 waits forever
    assert code not in (TrainerExit.DONE, TrainerExit.STOPPED, TrainerExit.OOM), stderr
    assert not (tmp_path / "ranks" / "rank-1").exists()


def test_more_processes_than_visible_gpus_is_one_clear_error(data: Path, tmp_path: Path) -> None:
    visible = torch.cuda.device_count()
    wanted = max(2, visible + 1)
    proc = launch(config(data, tmp_path / "config.yaml", **{"train.device": "auto"}), tmp_path, processes=wanted)
    code, stderr = finish(proc)
    assert code == TrainerExit.UNRUNNABLE, stderr
    assert f"resources.gpus is {wanted} but {visible} CUDA GPU" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "events.jsonl").exists()


def test_the_runner_trains_two_ranks_and_steps_down_when_one_runs_out_of_memory(tmp_path: Path) -> None:
    """`resources.gpus: 2` through the real CLI: an OOM on rank 1 alone steps the ladder down for
    both ranks, and the job ends done with plain (not DDP-wrapped) weights in the store."""
    frames = tmp_path / "frames"
    spec = write_spec(tmp_path / "spec.yaml", "ddp", str(tmp_path / "runs"), frames,
                      resources={"gpus": PROCESSES}, train={"max_epochs": 2})
    # rung 0: batch 4 at 128x72 (36,864 pixels a batch) fails; rung 1: batch 2, accumulation 2, fits
    result = runner("submit", str(spec), cwd=tmp_path, env={FAULT_OOM_ABOVE: "20000", FAULT_RANK: "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(str(tmp_path / "runs"), "ddp")
    assert state["phase"] == "done"
    assert [oom["rung"]["batch_size"] for oom in state["ooms"]] == [4]
    assert (state["rung"]["index"], state["rung"]["batch_size"], state["rung"]["accumulation"]) == (1, 2, 2)
    weights = stored_weights(str(tmp_path / "runs"), "ddp", tmp_path)
    assert weights and not any(key.startswith("module.") for key in weights)
