"""`runner pull` (issue 12): weights and checkpoints out of the store, verified against their
manifests, through the real CLI on a local store filled as a session leaves it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contract.manifest import Manifest, WeightsManifest
from runner.spec import dump_spec, parse_spec

RUNNER = shutil.which("runner")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")]


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNNER, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def job_with_weights(tmp_path: Path) -> Path:
    """A store whose job `j` has best-evalai weights with a manifest, and two checkpoints."""
    store = tmp_path / "store"
    job = store / "j"
    (job / "weights").mkdir(parents=True)
    (job / "checkpoints").mkdir()
    (job / "spec.yaml").write_text(dump_spec(parse_spec({"name": "j", "store": str(store)})))
    data = b"weights" * 1000
    (job / "weights" / "best-evalai.pt").write_bytes(data)
    (job / "weights" / "best-evalai.json").write_bytes(WeightsManifest(
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), step=40, epoch=4, metric="val_evalai",
        value=0.61, written_at=0, token=3).to_json())
    for step in (10, 20):
        blob = f"checkpoint {step}".encode()
        (job / "checkpoints" / f"step-{step:09d}.pt").write_bytes(blob)
        (job / "checkpoints" / f"step-{step:09d}.json").write_bytes(Manifest(
            step=step, epoch=step // 10, position=0, size=len(blob), sha256=hashlib.sha256(blob).hexdigest(),
            written_at=0, token=3).to_json())
    return store


def test_pull_verifies_and_says_what_it_got(tmp_path: Path) -> None:
    store = job_with_weights(tmp_path)
    out = tmp_path / "w.pt"
    result = runner("pull", "j", "--store", str(store), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"weights" * 1000
    assert "step 40, epoch 4, best val_evalai 0.61" in result.stdout and "verified" in result.stdout

    newest = runner("pull", "j", "--store", str(store), "--checkpoint", "--out", str(tmp_path / "c.pt"), cwd=tmp_path)
    assert newest.returncode == 0 and (tmp_path / "c.pt").read_bytes() == b"checkpoint 20"
    (store / "j" / "checkpoints" / "step-000000020.pt").write_bytes(b"checkpoint 2")  # truncated: falls back
    older = runner("pull", "j", "--store", str(store), "--checkpoint", "--out", str(tmp_path / "c.pt"), cwd=tmp_path)
    assert older.returncode == 0 and (tmp_path / "c.pt").read_bytes() == b"checkpoint 10", older.stderr


def test_a_mismatch_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    store = job_with_weights(tmp_path)
    (store / "j" / "weights" / "best-evalai.pt").write_bytes(b"tampered" * 1000)
    out = tmp_path / "w.pt"
    result = runner("pull", "j", "--store", str(store), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 1 and "does not match its manifest" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    missing = runner("pull", "j", "--store", str(store), "--weights", "final", cwd=tmp_path)
    assert missing.returncode == 1 and "not in the store yet" in missing.stderr
    (store / "j" / "weights" / "best-evalai.json").write_text("{not json")
    bad = runner("pull", "j", "--store", str(store), "--out", str(out), cwd=tmp_path)
    assert bad.returncode == 1 and "manifest is unreadable" in bad.stderr
    wrong = runner("pull", "j", "--store", str(store), "--weights", "../spec", cwd=tmp_path)
    assert wrong.returncode == 2 and "choose one of" in wrong.stderr
    nosuch = runner("pull", "nosuch", "--store", str(store), cwd=tmp_path)
    assert nosuch.returncode == 2 and "no job 'nosuch'" in nosuch.stderr
    assert json.loads((store / "j" / "checkpoints" / "step-000000010.json").read_text())["step"] == 10
