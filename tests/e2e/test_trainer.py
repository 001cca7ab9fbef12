"""`python -m trainer train` as the runner launches it: real subprocesses, real signals.

Tiny synthetic SoccerNet-format data, hrnet_w18_small at 128x72, CPU, deterministic settings.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from contract.codes import FAULT_CRASH_AT_STEP, FAULT_OOM_ABOVE, TrainerExit
from contract.config import AttemptConfig
from contract.events import read_events
from contract.files import list_checkpoints, sha256_of
from contract.manifest import Manifest
from trainer.inference.weights import read_weights
from trainer.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.e2e


def checkpoint_paths(work: Path) -> list[Path]:
    return [path for _, path in list_checkpoints(work / "checkpoints")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, frames, seed in (("train", 12, 1), ("valid", 4, 2)):
        subprocess.run([sys.executable, "-m", "trainer", "synth", str(root / split), "--frames", str(frames),
                        "--seed", str(seed)], check=True, capture_output=True)
    return root


def make_config(data: Path, path: Path, **overrides: object) -> Path:
    document = {
        "model": {"arch": "hrnet_w18_small"},
        "data": {"train_dir": str(data / "train"), "valid_dir": str(data / "valid"), "num_workers": 0},
        "rung": {"batch_size": 4, "input_size": [128, 72], "accumulation": 1},
        "train": {"lr": 1e-3, "max_epochs": 3, "early_stopping_epochs": 10, "amp": False, "device": "cpu",
                  "deterministic": True, "seed": 7},
        "checkpoint": {"every_minutes": 1e-6, "keep_last": 50},
        "logging": {"progress_every_seconds": 0},
    }
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        document[section][key] = value
    config = AttemptConfig.model_validate(document)
    config.save(path)
    return path


def train(config: Path, work: Path, resume: Path | None = None, env: dict | None = None,
          wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "trainer", "train", "--config", str(config), "--workdir", str(work)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env)


def kinds(work: Path) -> list[str]:
    return [e["kind"] for e in read_events(work / "events.jsonl")]


def wait_for_checkpoints(work: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while kinds(work).count("checkpoint") < count:
        assert proc.poll() is None, f"trainer ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)


def final_weights(work: Path) -> dict[str, torch.Tensor]:
    return read_weights(work / "weights" / "final.pt").state_dict


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("uninterrupted")
    result = train(make_config(data, work / "config.yaml"), work)
    assert result.returncode == 0, result.stderr
    return work


def test_training_writes_the_contract_and_lowers_the_loss(uninterrupted: Path) -> None:
    work = uninterrupted
    events = read_events(work / "events.jsonl")
    seen = [e["kind"] for e in events]
    assert seen[0] == "start" and seen[-1] == "done"
    assert {"progress", "epoch", "checkpoint"} <= set(seen)
    assert events[-1]["reason"] == "max_epochs"
    progress = next(e for e in events if e["kind"] == "progress")
    assert {"epoch", "step", "steps_per_epoch", "loss", "samples_per_s"} <= set(progress)
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert len(epochs) == 3
    assert epochs[-1]["metrics"]["train_loss"] < epochs[0]["metrics"]["train_loss"]
    for key in ("val_loss", "val_evalai", "val_pck@5"):
        assert key in epochs[-1]["metrics"]
    best = epochs[-1]["best"]["val_loss"]  # the supervisor takes best metrics from here
    assert best["value"] == min(e["metrics"]["val_loss"] for e in epochs) and set(best) == {"value", "epoch", "step"}
    checkpoints = checkpoint_paths(work)
    assert checkpoints and all(p.with_suffix(".json").exists() for p in checkpoints)
    state, manifest = load_checkpoint(checkpoints[-1])
    assert state["finished"] == "max_epochs" and manifest.epoch == 3
    assert (work / "weights" / "final.pt").exists() and (work / "weights" / "best-val-loss.pt").exists()
    assert "samples/s" in (work / "trainer.log").read_text()
    assert any((work / "tensorboard").iterdir())


def test_exact_resume_after_repeated_sigkill(data: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """Killed at random checkpoints and resumed, the run ends bit-identical to one never killed."""
    config = make_config(data, tmp_path / "config.yaml")
    rng = random.Random(1234)
    resume, kills = None, 0
    for target in sorted(rng.sample(range(1, 9), 3)):
        proc = train(config, tmp_path, resume=resume, wait=False)
        wait_for_checkpoints(tmp_path, target, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        resume = checkpoint_paths(tmp_path)[-1]
    result = train(config, tmp_path, resume=resume)
    assert result.returncode == 0, result.stderr
    assert kills == 3 and kinds(tmp_path).count("start") == 4
    expected, got = final_weights(uninterrupted), final_weights(tmp_path)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{key} differs after resume"


def test_sigterm_saves_and_exits_76(data: Path, tmp_path: Path) -> None:
    config = make_config(data, tmp_path / "config.yaml", **{"checkpoint.every_minutes": 60.0, "train.max_epochs": 50})
    proc = train(config, tmp_path, wait=False)
    deadline = time.monotonic() + 300
    while "progress" not in kinds(tmp_path):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == TrainerExit.STOPPED
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["kind"] == "done" and events[-1]["reason"] == "stopped"
    newest = checkpoint_paths(tmp_path)[-1]
    state, _ = load_checkpoint(newest)
    assert state["position"]["step"] >= 1 and state["finished"] is None


def test_injected_oom_exits_75_without_checkpoint(data: Path, tmp_path: Path) -> None:
    config = make_config(data, tmp_path / "config.yaml")
    result = train(config, tmp_path, env={FAULT_OOM_ABOVE: str(4 * 128 * 72 - 1)})
    assert result.returncode == TrainerExit.OOM, result.stderr
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["kind"] == "oom" and events[-1]["rung"]["batch_size"] == 4
    assert checkpoint_paths(tmp_path) == []


def test_oom_threshold_respects_activation_checkpointing(data: Path, tmp_path: Path) -> None:
    config = make_config(data, tmp_path / "config.yaml", **{
        "rung.activation_checkpointing": True, "train.max_epochs": 1})
    result = train(config, tmp_path, env={FAULT_OOM_ABOVE: str(4 * 128 * 72 - 1)})
    assert result.returncode == 0, result.stderr  # the load is halved under checkpointing


def test_injected_crash_is_an_error_exit(data: Path, tmp_path: Path) -> None:
    config = make_config(data, tmp_path / "config.yaml")
    result = train(config, tmp_path, env={FAULT_CRASH_AT_STEP: "2"})
    assert result.returncode not in set(TrainerExit)
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["kind"] == "error" and "injected crash at step 2" in events[-1]["message"]


def test_truncated_checkpoint_is_refused(uninterrupted: Path, data: Path, tmp_path: Path) -> None:
    source = checkpoint_paths(uninterrupted)[0]
    broken = tmp_path / source.name
    broken.write_bytes(source.read_bytes()[:1000])
    broken.with_suffix(".json").write_text(source.with_suffix(".json").read_text())
    result = train(make_config(data, tmp_path / "config.yaml"), tmp_path / "work", resume=broken)
    assert result.returncode == TrainerExit.BAD_CHECKPOINT
    assert "truncated" in result.stderr and "Traceback" not in result.stderr
    assert read_events(tmp_path / "work" / "events.jsonl")[-1]["checkpoint"] == str(broken)


def test_a_checkpoint_unsafe_to_unpickle_is_refused(uninterrupted: Path, data: Path, tmp_path: Path) -> None:
    """A checkpoint whose manifest matches but which `weights_only` refuses (issue 10.3)."""
    source = checkpoint_paths(uninterrupted)[0]
    unsafe = tmp_path / source.name
    torch.save({"format": 1, "payload": os.getcwd}, unsafe)  # a global: code, not data
    manifest = Manifest.read(source.with_suffix(".json"))
    unsafe.with_suffix(".json").write_bytes(
        manifest.model_copy(update={"size": unsafe.stat().st_size, "sha256": sha256_of(unsafe)}).to_json())
    result = train(make_config(data, tmp_path / "config.yaml"), tmp_path / "work", resume=unsafe)
    assert result.returncode == TrainerExit.BAD_CHECKPOINT, result.stderr
    assert "cannot be resumed from" in result.stderr


def test_resume_on_another_rung_finishes_the_epoch(data: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """A checkpoint from batch 4 continues at batch 2 with accumulation 2 at the exact sample."""
    mid_epoch = next(p for p in checkpoint_paths(uninterrupted)
                     if json.loads(p.with_suffix(".json").read_text())["position"] == 4)
    config = make_config(data, tmp_path / "config.yaml", **{
        "rung.batch_size": 2, "rung.accumulation": 2, "rung.input_size": [96, 64]})
    result = train(config, tmp_path, resume=mid_epoch)
    assert result.returncode == 0, result.stderr
    events = read_events(tmp_path / "events.jsonl")
    start = events[0]
    assert start["samples"] == 4 and start["rung"]["batch_size"] == 2
    first_progress = next(e for e in events if e["kind"] == "progress")
    assert first_progress["samples"] == 6 and first_progress["epoch"] == 0
