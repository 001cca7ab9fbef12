"""A full work-dir disk (issue 10.5): the trainer says so, leaves no temp files and exits 78; the
supervisor stops with the same words in status and never uploads anything partial. The disk
fills through the trainer's fault-injection variable (mounting a tmpfs needs privileges CI lacks)."""

from __future__ import annotations

from pathlib import Path

from contract.codes import FAULT_ENOSPC_AT_STEP, RunnerExit
from contract.files import sha256_of
from contract.manifest import Manifest
from runner.store import Store
from tests.e2e.test_runner import data_root, runner, state_of, write_spec

__all__ = ["data_root"]  # the module-scoped fixture, shared with test_runner


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
    job = Store(store).job("full")
    for name in job.list("checkpoints"):
        if name.endswith(".json"):
            manifest = Manifest.model_validate_json(job.get_bytes(f"checkpoints/{name}") or b"")
            local = tmp_path / "check.pt"
            assert job.get_file(f"checkpoints/{name[:-5]}.pt", local)
            assert sha256_of(local) == manifest.sha256 and manifest.step < 3
