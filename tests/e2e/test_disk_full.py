"""A full work-dir disk (issue 10.5): the trainer says so, leaves no temp files and exits 78; the
supervisor stops with the same words in status and never uploads anything partial. The disk
fills for real on a small tmpfs mounted in a user namespace of the test's own (skipped, saying
why, where the kernel does not allow that), and through the trainer's fault-injection variable
everywhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from contract.codes import FAULT_ENOSPC_AT_STEP, RunnerExit
from contract.files import sha256_of
from contract.manifest import Manifest
from runner.store import Store
from tests.e2e.test_runner import data_root, runner, state_of, write_spec

__all__ = ["data_root"]  # the module-scoped fixture, shared with test_runner


TMPFS_MB = 48  # two checkpoints of this test's model (~19 MB each) fit, the third does not


def tmpfs_refusal() -> str | None:
    """Why a tmpfs cannot be mounted in a user namespace here, or None when it can."""
    if shutil.which("unshare") is None:
        return "no `unshare` command"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"tmpfs in a user namespace refused: {probe.stderr.strip()[:200]}"


def test_a_really_full_tmpfs_stops_the_job_with_the_reason_and_nothing_partial(data_root: Path, tmp_path: Path) -> None:
    refusal = tmpfs_refusal()
    if refusal:
        pytest.skip(refusal)
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "full", store, data_root)
    work = tmp_path / "work"
    work.mkdir()
    command = (f'mount -t tmpfs -o size={TMPFS_MB}m tmpfs "{work}" && exec "$0" -m runner submit "{spec}" '
               f'--workdir "{work}"')
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command, shutil.which("python") or "python"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == RunnerExit.FAILED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    state = state_of(store, "full")
    assert state["phase"] == "failed" and state["reason"].startswith("no space left on device in "), state
    assert "MB for a checkpoint" in state["reason"]
    assert_only_whole_checkpoints(store, tmp_path)


def test_a_full_disk_stops_the_job_with_the_reason_and_nothing_partial(data_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "full", store, data_root)
    work = tmp_path / "work"
    result = runner("submit", str(spec), "--workdir", str(work), cwd=tmp_path, env={FAULT_ENOSPC_AT_STEP: "3"})
    assert result.returncode == RunnerExit.FAILED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    state = state_of(store, "full")
    assert state["phase"] == "failed" and state["reason"].startswith("no space left on device in ")
    assert "MB for a checkpoint" in state["reason"]
    assert not [p.name for p in (work / "checkpoints").iterdir() if p.name.startswith(".")], "temp files left"
    assert state["restarts"] == 0
    assert_only_whole_checkpoints(store, tmp_path, before_step=3)


def assert_only_whole_checkpoints(store: str, tmp_path: Path, before_step: int | None = None) -> None:
    """Every manifest in the store names a checkpoint whose bytes match it: nothing partial went up."""
    job = Store(store).job("full")
    for name in job.list("checkpoints"):
        if name.endswith(".json"):
            manifest = Manifest.model_validate_json(job.get_bytes(f"checkpoints/{name}") or b"")
            local = tmp_path / "check.pt"
            assert job.get_file(f"checkpoints/{name[:-5]}.pt", local)
            assert sha256_of(local) == manifest.sha256
            assert before_step is None or manifest.step < before_step
