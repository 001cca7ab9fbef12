"""The trainer's rooms import only what their package docstrings allow (DESIGN §2).

Read from the source, so a forbidden import is found even on a path no other test runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# room -> (modules it must not import, exceptions to those)
RULES = {
    "trainer": (("runner",), ()),
    "trainer/data": (("trainer.model", "trainer.training", "trainer.evaluation"), ()),
    "trainer/data/keypoints": (("torch", "trainer"), ("trainer.data.keypoints",)),
    "trainer/model": (("trainer.training", "trainer.evaluation"), ()),
    "trainer/evaluation": (("torch", "trainer.model", "trainer.training"), ()),
    "trainer/inference": (("trainer.training",), ()),
    # the camera step runs in pool workers, which import its module: no torch there
    "trainer/inference/outputs.py": (("torch", "trainer.model", "trainer.inference.weights"), ()),
    "trainer/inference/overlay.py": (("torch", "trainer.model", "trainer.inference.weights"), ()),
}


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize(("room", "rule"), RULES.items())
def test_rooms_import_only_downhill(room: str, rule: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    forbidden, allowed = rule
    offences = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in ([REPO / room] if room.endswith(".py") else sorted((REPO / room).rglob("*.py")))
        for name in imported_modules(path)
        if within(name, forbidden) and not within(name, allowed)
    ]
    assert not offences


def test_every_room_says_what_lives_there() -> None:
    for init in sorted((REPO / "trainer").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "Lives here" in doc and "import" in doc, f"{init.relative_to(REPO)} has no room docstring"
