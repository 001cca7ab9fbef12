"""The README's commands run as written (issue 11): the CLI reference's block on the demo job,
line by line, and the Colab section's `!` lines against a `gs://` store on the emulator, with a
Colab cut-off between the first session and the resume. Only the Colab-only lines (clone,
install, `%cd`, `google.colab`) are left out, and the bucket's name is the test's own."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runner") is None, reason="runner console script not installed")]

COLAB_ONLY = ("git clone", "pip install", "%cd", "google.colab")


def block_after(marker: str, language: str) -> str:
    """The first fenced block of `language` after the line containing `marker`."""
    rest = README[README.index(marker):]
    found = re.search(rf"```{language}\n(.*?)```", rest, re.S)
    assert found, f"no ```{language} block after {marker!r} in the README"
    return found.group(1)


def sh(line: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def workspace(tmp_path: Path) -> Path:
    """A folder laid out as the repository's root for these commands: its jobs/ folder."""
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    return tmp_path


def test_the_cli_reference_block_runs_as_written(tmp_path: Path) -> None:
    cwd = workspace(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    for line in block_after("Every command below", "bash").splitlines():
        result = sh(line, cwd, env)
        assert result.returncode == 0, f"`{line}` exited {result.returncode}: {result.stdout}{result.stderr}"
        if line.startswith("runner logs demo --store ./runs -f"):
            assert "job demo is done" in result.stderr
        if line.startswith("runner attach"):
            assert "already done" in result.stdout
    assert json.loads((cwd / "runs" / "demo" / "state.json").read_text())["phase"] == "done"
    # then "Using the trained model", its /tmp paths kept inside the test's own folder
    for line in block_after("## Using the trained model", "bash").splitlines():
        result = sh(line.replace("/tmp/", f"{tmp_path}/out-"), cwd, env)
        assert result.returncode == 0, f"`{line}` exited {result.returncode}: {result.stdout}{result.stderr}"
    assert list((tmp_path / "out-pred").glob("*.overlay.jpg")), "predict --overlay drew no overlay"


def colab_lines(block: str) -> list[str]:
    return [line[1:] for line in block.splitlines()
            if line.startswith("!") and not any(part in line for part in COLAB_ONLY)]


def test_the_colab_section_runs_as_written(tmp_path: Path, gcs_emulator) -> None:
    """`jobs/t4.yaml` in this workspace is the demo job under the T4 job's name (this machine has
    no GPU and no SoccerNet); every `runner` line is the README's, on a bucket of the emulator."""
    cwd = workspace(tmp_path)
    demo = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
    t4_name = yaml.safe_load((ROOT / "jobs" / "t4.yaml").read_text())["name"]
    (cwd / "jobs" / "t4.yaml").write_text(yaml.safe_dump({**demo, "name": t4_name, "train": {
        **demo["train"], "max_epochs": 6}}))
    gcs_emulator.create_bucket("readme-colab")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}

    def run(line: str) -> subprocess.CompletedProcess[str]:
        line = line.replace("gs://YOUR-BUCKET/", "gs://readme-colab/")
        result = sh(line, cwd, env)
        assert result.returncode == 0, f"`{line}` exited {result.returncode}: {result.stdout}{result.stderr}"
        return result

    first, resume = (block_after(marker, "python") for marker in ("By hand, the same steps", "install and authenticate the same way"))
    outputs = [run(line) for line in colab_lines(first)]
    assert "holds it" in outputs[0].stdout
    started = json.loads((cwd / ".runner" / t4_name / "started.json").read_text())
    os.killpg(os.getpgid(started["pid"]), signal.SIGKILL)  # Colab cuts the session
    deadline = time.monotonic() + 60
    while '"interrupted"' not in run(f"runner status {t4_name} --store gs://readme-colab/runs --json").stdout:
        assert time.monotonic() < deadline, "the job never read as interrupted after the cut-off"
        time.sleep(1)
    outputs = [run(line) for line in colab_lines(resume)]
    assert "holds it" in outputs[0].stdout
    assert f"job {t4_name} is done" in outputs[1].stderr
