"""The supervisor side never loads torch (DESIGN §1): it meets the trainer only through files."""

from __future__ import annotations

import subprocess
import sys


def test_runner_does_not_import_torch() -> None:
    code = "import sys, runner.cli, runner.supervisor; print(sorted(m for m in ('torch', 'cv2', 'albumentations') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
