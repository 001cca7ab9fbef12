"""`runner submit` refuses to change an existing job's spec without --force-spec, before any work."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runner.spec import dump_spec, parse_spec

RUNNER = shutil.which("runner")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")]


def test_a_different_spec_for_an_existing_job_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "j").mkdir(parents=True)
    (store / "j" / "spec.yaml").write_text(dump_spec(parse_spec({"name": "j", "store": str(store)})))
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({"name": "j", "store": str(store), "train": {"lr": 0.001}}))
    result = subprocess.run([RUNNER, "submit", str(changed), "--workdir", str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert "different spec" in result.stderr and "--force-spec" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "j" / "lease").exists()
