"""`python -m trainer synth --click-noise --distortion`: realistic frames on disk, and their
options checked at the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trainer.data.synthetic.generate import generate

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def _synth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "synth", *args],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )


def test_cli_writes_the_distortion_beside_each_frame_and_matches_the_library(tmp_path: Path) -> None:
    run = _synth(str(tmp_path / "cli"), "--frames", "2", "--seed", "5", "--click-noise", "1", "--distortion", "0.03")
    assert run.returncode == 0, run.stderr
    for index in range(2):
        camera = json.loads((tmp_path / "cli" / f"{index:05d}.camera.json").read_text())
        assert camera["radial_distortion"] == [0.03, 0.0, 0.0, 0.0, 0.0, 0.0]
    generate(tmp_path / "lib", frames=2, seed=5, click_noise=1.0, distortion=0.03)
    plain = tmp_path / "plain"
    generate(plain, frames=2, seed=5)
    for name in ("00000.json", "00001.json", "00001.camera.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()
        assert (tmp_path / "cli" / name).read_bytes() != (plain / name).read_bytes()


def test_cli_rejects_out_of_range_options_in_one_line(tmp_path: Path) -> None:
    for option, value in (("--distortion", "0.5"), ("--click-noise", "-1")):
        run = _synth(str(tmp_path / "bad"), "--frames", "1", option, value)
        assert run.returncode == 2
        assert option in run.stderr.splitlines()[-1] and "Traceback" not in run.stderr
        assert not (tmp_path / "bad").exists()
