"""The whole Colab journey (issue 11), as a user plays it over three sessions: `submit --detach`,
the session cut off (its process tree killed, its work dir and data dir deleted: a fresh VM),
`attach --detach` from another directory, cut off again, `attach --detach` once more, followed
with `logs -f` to the end. The job ends `done`; sessions 2 and 3 take their data from the
store's cache (no rendering, no keypoint derivation); status shows the three sessions, and the
goodput counters add up to their wall time within the documented tolerance."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from runner.status import parse_iso
from tests.e2e.test_goodput import TOLERANCE_FRACTION, TOLERANCE_S
from tests.e2e.test_runner import remote_steps, state_of, wait_until

RUNNER = shutil.which("runner")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(RUNNER is None, reason="the `runner` console script is not on PATH (activate the venv)")]

JOB = "journey"


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([RUNNER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def cut_off(vm: Path) -> None:
    """Colab ends the session: the detached supervisor's process tree dies, the VM's disk is gone."""
    started = json.loads((vm / ".runner" / JOB / "started.json").read_text())
    os.killpg(os.getpgid(started["pid"]), signal.SIGKILL)
    shutil.rmtree(vm)


def test_three_sessions_from_submit_to_done(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    vms = [tmp_path / f"vm{i}" for i in (1, 2, 3)]
    vms[0].mkdir()
    spec = {
        "name": JOB, "store": store,
        "data": {"source": "synthetic", "root": "./data", "frames": 8, "valid_frames": 4, "seed": 5, "num_workers": 0},
        "model": {"arch": "hrnet_w18_small"},
        "train": {"batch_size": 4, "input_size": [128, 72], "max_epochs": 30, "lr": 1e-3, "amp": False,
                  "device": "cpu", "seed": 7},
        "oom": {"batch_sizes": [4], "input_sizes": [[128, 72]]},
        "checkpoint": {"every_minutes": 1e-6, "keep_last": 3},
        "sync": {"every_seconds": 1.0},
    }
    (vms[0] / "job.yaml").write_text(yaml.safe_dump(spec))

    first = cli("submit", "job.yaml", "--detach", cwd=vms[0])
    assert first.returncode == 0 and "holds it" in first.stdout, first.stdout + first.stderr
    wait_until(lambda: len(remote_steps(store, JOB)) >= 2, what="session 1's checkpoints")
    cut_off(vms[0])
    wait_until(lambda: '"interrupted"' in cli("status", JOB, "--store", store, "--json", cwd=tmp_path).stdout,
               what="the job to read as interrupted")

    for number, vm in ((2, vms[1]), (3, vms[2])):
        vm.mkdir()
        resumed = cli("attach", JOB, "--store", store, "--detach", cwd=vm)
        assert resumed.returncode == 0 and "holds it" in resumed.stdout, resumed.stdout + resumed.stderr
        if number == 2:
            reached = max(remote_steps(store, JOB))
            wait_until(lambda: max(remote_steps(store, JOB)) >= reached + 4, what="session 2's checkpoints")
            cut_off(vm)
            wait_until(lambda: '"interrupted"' in cli("status", JOB, "--store", store, "--json", cwd=tmp_path).stdout,
                       what="the job to read as interrupted again")
    followed = cli("logs", JOB, "--store", store, "-f", cwd=tmp_path)
    assert followed.returncode == 0 and f"job {JOB} is done" in followed.stderr, followed.stderr

    state = state_of(store, JOB)
    assert state["phase"] == "done"
    sessions = state["sessions"]
    assert [s["end_reason"] for s in sessions] == ["lost", "lost", "done"], sessions
    for later in sessions[1:]:
        data = later["data"]
        assert data["restored"] and not data["prepared"] and data["keypoints_derived"] == 0, data
    wall = sum((parse_iso(s["ended_at"]) - parse_iso(s["started_at"])).total_seconds() for s in sessions)
    goodput = state["goodput"]
    counted = goodput["training_s"] + goodput["restoring_s"] + goodput["preparing_s"]
    tolerance = len(sessions) * TOLERANCE_S + TOLERANCE_FRACTION * wall
    assert abs(wall - counted) <= tolerance, f"wall {wall:.1f} s, counted {counted:.1f} s, tolerance {tolerance:.1f} s"
    shown = cli("status", JOB, "--store", store, cwd=tmp_path).stdout
    assert len(re.findall(r"│ session\s+│", shown)) == 3 and re.search(r"│ goodput\s+│ training", shown), shown
