"""A checkpoint that verifies but that the trainer refuses falls back to an older one (issue 10.3).

The newest remote checkpoint is replaced by one that `torch.load(weights_only=True)` refuses (it
pickles a global), with a manifest that matches it, so only the trainer can tell it is bad.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from contract.files import sha256_of
from contract.manifest import Manifest
from runner.store import Store
from tests.e2e.test_runner import data_root, kill_group, remote_steps, runner, start, state_of, wait_until, write_spec

__all__ = ["data_root"]  # the module-scoped fixture, shared with test_runner


def test_a_refused_checkpoint_is_marked_bad_and_an_older_one_resumes(data_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "refused", store, data_root, train={"max_epochs": 2})
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "refused")) >= 2, what="two uploaded checkpoints")
    kill_group(proc)
    js = Store(store).job("refused")
    newest = remote_steps(store, "refused")[-1]
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": 1, "payload": os.getcwd}, unsafe)  # a global: code, not data
    manifest = Manifest.model_validate_json(js.get_bytes(f"checkpoints/step-{newest:09d}.json") or b"")
    js.put_file(unsafe, f"checkpoints/step-{newest:09d}.pt")
    js.put_bytes(f"checkpoints/step-{newest:09d}.json", manifest.model_copy(
        update={"size": unsafe.stat().st_size, "sha256": sha256_of(unsafe)}).to_json())

    result = runner("attach", "refused", "--store", store, "--workdir", str(tmp_path / "w2"), "--take-over",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"checkpoint step-{newest:09d}.pt refused by the trainer" in result.stderr
    assert "Traceback" not in result.stderr
    assert js.exists(f"checkpoints/step-{newest:09d}.pt.bad")
    state = state_of(store, "refused")
    assert state["phase"] == "done" and state["restarts"] == 0
