"""bench/gpu.py, the GPU check (issue 14): without a CUDA GPU it says so in one line and exits 0, so
`bash bench/gpu.sh` is safe to run anywhere. On a GPU machine it is run by hand (minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: the check would run for minutes")
def test_the_gpu_check_skips_cleanly_without_a_gpu() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bench/gpu.py: skipped: no CUDA GPU is visible on this machine"
    assert "Traceback" not in result.stderr
