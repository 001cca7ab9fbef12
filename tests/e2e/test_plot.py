"""`runner plot` on a real job's store (issue 13): two real sessions of the CPU demo setup, the
first stepping down the OOM ladder (injected) and killed -9 after it logged an epoch whose
checkpoint never reached the store, the second taking over in a fresh work dir, training that
epoch again and running to `done`. The real `runner` CLI draws the PNG; the test opens it with
matplotlib and checks what `--json` says it shows against the store. About a minute here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from matplotlib.image import imread

from contract.codes import FAULT_OOM_ABOVE
from tests.e2e.test_runner import data_root, kill_group, remote_steps, runner, start, state_of, wait_until, write_spec

__all__ = ["data_root"]  # the module-scoped fixture, shared with test_runner

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runner") is None, reason="the `runner` console script is not on PATH")]

JOB = "demo"
MAX_EPOCHS = 10
STEPS_PER_EPOCH = 2  # write_spec's 8 frames at batch 4 (or batch 2 with accumulation 2)
METRICS = ["val_evalai", "val_loss", "train_loss"]


def plot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real console script, as a user runs it."""
    result = subprocess.run([shutil.which("runner"), "plot", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_plot_of_two_real_sessions_with_an_oom_and_an_epoch_trained_twice(data_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    # a checkpoint every 2nd epoch only, so an odd epoch is logged (and uploaded) without its checkpoint
    spec = write_spec(tmp_path / "job.yaml", JOB, store, data_root, train={"max_epochs": MAX_EPOCHS},
                      checkpoint={"every_minutes": 60, "every_epochs": 2})
    # batch 4 x 128 x 72 runs out of memory, batch 2 fits: one step down the ladder
    first = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path,
                  env={FAULT_OOM_ABOVE: str(4 * 128 * 72 - 1)})

    def an_epoch_beyond_the_checkpoint() -> bool:
        if first.poll() is not None:
            pytest.fail(f"session 1 exited with {first.returncode} before it could be killed:\n{first.stdout.read()}")
        state = state_of(store, JOB)
        steps = remote_steps(store, JOB)
        return state.get("epoch", 0) >= 3 and STEPS_PER_EPOCH * state["epoch"] > (steps[-1] if steps else 0)

    try:
        wait_until(an_epoch_beyond_the_checkpoint, timeout=120, what="an epoch logged beyond the newest checkpoint")
    finally:
        if first.poll() is None:
            kill_group(first)
    killed = state_of(store, JOB)
    resumed_at = remote_steps(store, JOB)[-1]
    assert STEPS_PER_EPOCH * killed["epoch"] > resumed_at  # so session 2 trains an epoch again

    second = runner("submit", str(spec), "--workdir", str(tmp_path / "w2"), "--take-over", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    state = state_of(store, JOB)
    assert state["phase"] == "done" and len(state["sessions"]) == 2

    events = runner("logs", JOB, "--events", "--store", store, cwd=tmp_path)
    logged = Counter(e["epoch"] for e in map(json.loads, events.stdout.splitlines()) if e["kind"] == "epoch")
    assert max(logged.values()) == 2, logged  # the store holds an epoch trained twice

    out = tmp_path / "plots" / "demo.png"
    drawn = plot(JOB, "--store", store, "--out", str(out), "--json", cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    shown = json.loads(drawn.stdout)
    height, width, _ = imread(out).shape  # it opens; one 260-pixel panel per series
    assert (height, width) == (120 + 260 * len(METRICS), 1000)
    assert [s["metric"] for s in shown["series"]] == METRICS
    assert [s["points"] for s in shown["series"]] == [MAX_EPOCHS] * len(METRICS)  # every epoch once
    assert (shown["epochs"], shown["sessions"]) == (MAX_EPOCHS, 2)
    assert [m["session"] for m in shown["session_starts"]] == [s["id"] for s in state["sessions"]]
    assert [m["step"] for m in shown["session_starts"]] == [0, resumed_at]
    assert [m["step"] for m in shown["resumes"]] == [0, resumed_at]  # after the OOM, and session 2
    assert shown["ooms"] == [{"session": state["sessions"][0]["id"], "step": 0, "from": "batch 4 128x72",
                              "to": "batch 2 128x72"}]
    for series in shown["series"]:
        assert series["last"]["epoch"] == MAX_EPOCHS and series["last"]["step"] == STEPS_PER_EPOCH * MAX_EPOCHS
    # the best points agree with the trainer's own, which it kept across the resume
    for series in shown["series"][:2]:
        trainer_best = state["best"][series["metric"]]
        assert (series["best"]["value"], series["best"]["step"]) == (trainer_best["value"], trainer_best["step"])

    said = plot(JOB, "--store", store, "--live", cwd=tmp_path)  # a done job: drawn once, then it ends
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == (f"demo.png: demo val_evalai, val_loss, train_loss over {MAX_EPOCHS} epochs "
                                   f"(steps 2–{STEPS_PER_EPOCH * MAX_EPOCHS}), 2 sessions, 1 OOM step-down")
    assert said.stderr.strip() == "job demo is done (max_epochs); demo.png is final"
    assert imread(tmp_path / "demo.png").shape == (height, width, 4)
