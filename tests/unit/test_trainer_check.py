"""`trainer_missing()`: one line naming what the trainer lacks, or None; and TRAINER_MODULES in step
with pyproject.toml's `trainer` extra and the Dockerfile in step with the packages."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner import trainer_check
from runner.trainer_check import INSTALL_HINT, TRAINER_MODULES, missing_trainer_modules, trainer_missing

ROOT = Path(__file__).parents[2]


def fake_find_spec(missing: set[str], broken: set[str] = frozenset()):
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None):
        if name in broken:
            raise ValueError(f"{name}.__spec__ is None")
        if name in missing:
            return None
        return real("json")  # any spec: found, and nothing imported

    return find_spec


def test_nothing_missing_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_check.importlib.util, "find_spec", fake_find_spec(set()))
    assert missing_trainer_modules() == []
    assert trainer_missing() is None


def test_missing_modules_are_named_by_distribution_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_check.importlib.util, "find_spec", fake_find_spec({"cv2", "torch"}, {"argus"}))
    assert missing_trainer_modules() == ["torch", "argus", "cv2"]
    assert trainer_missing() == ("the trainer is not installed here (missing: torch, pytorch-argus, "
                                 f"opencv-python-headless): {INSTALL_HINT}")


def test_finding_modules_imports_none_of_them() -> None:
    code = ("import sys; from runner.trainer_check import missing_trainer_modules; missing_trainer_modules(); "
            f"print(sorted(m for m in {sorted(TRAINER_MODULES)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def trainer_extra() -> list[str]:
    """The distribution names in pyproject.toml's `trainer` extra (read without tomllib, which
    Python 3.10 lacks)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^trainer = \[(.*?)^\]", text, re.S | re.M)
    assert block, "pyproject.toml has no `trainer = [...]` extra"
    return [re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0] for req in re.findall(r'"([^"]+)"', block.group(1))]


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_trainer_modules_cover_the_trainer_extra() -> None:
    listed = {normal(dist) for module, dist in TRAINER_MODULES.items() if module != "trainer"}
    assert listed == {normal(dist) for dist in trainer_extra()}


def test_each_installed_distribution_provides_its_module() -> None:
    provided = importlib.metadata.packages_distributions()
    checked = 0
    for module, dist in TRAINER_MODULES.items():
        if module == "trainer" or module not in provided:
            continue  # not installed here (a runner-only install): nothing to compare
        assert normal(dist) in {normal(d) for d in provided[module]}, (module, provided[module])
        checked += 1
    if not checked:
        pytest.skip("the trainer extra is not installed here")


def test_dockerfile_copies_every_package() -> None:
    copied = set(re.findall(r"^COPY (\S+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert {"contract", "runner", "trainer"} <= copied
    assert '".[trainer]"' in (ROOT / "Dockerfile").read_text()
