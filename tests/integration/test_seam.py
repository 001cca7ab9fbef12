"""The seam (DESIGN §1, §2): the runner meets the trainer only through `contract` and files.

A fresh interpreter imports the runner's modules and must not have loaded torch, the training
stack, or any `trainer` module; the trainer must not import `runner`. A subprocess, because this
test process has torch loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
HEAVY = ("torch", "cv2", "albumentations", "trainer")


def _loaded_after(imports: str) -> list[str]:
    code = (f"import json, sys, {imports}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out)


def test_runner_cli_loads_neither_torch_nor_trainer() -> None:
    assert _loaded_after("runner.cli") == []


def test_every_runner_module_stays_torch_free() -> None:
    modules = sorted(f"runner.{p.stem}" for p in (ROOT / "runner").glob("*.py") if p.stem != "__main__")
    assert _loaded_after(", ".join(modules)) == []


def test_contract_is_torch_free() -> None:
    modules = sorted(f"contract.{p.stem}" for p in (ROOT / "contract").glob("*.py") if p.stem != "__init__")
    assert _loaded_after(", ".join(modules)) == []


def test_trainer_never_imports_runner() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "trainer").rglob("*.py")
                 if any(line.startswith(("import runner", "from runner")) for line in p.read_text().splitlines())]
    assert offenders == []
