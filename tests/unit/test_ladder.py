"""The OOM rungs a spec implies (DESIGN §7), tested as pure logic."""

from __future__ import annotations

import pytest

from contract.config import Rung
from runner.ladder import build_ladder
from runner.spec import parse_spec


def R(batch: int, size: tuple[int, int], checkpointing: bool, accumulation: int) -> Rung:
    return Rung(batch_size=batch, input_size=size, activation_checkpointing=checkpointing, accumulation=accumulation)


def test_default_ladder_order() -> None:
    ladder = parse_spec({"name": "j"}).ladder()
    assert ladder == [
        R(8, (960, 540), False, 1),
        R(4, (960, 540), False, 2),
        R(2, (960, 540), False, 4),
        R(2, (960, 540), True, 4),
        R(2, (720, 405), True, 4),
        R(2, (640, 360), True, 4),
    ]


def test_ladder_starts_at_train_settings() -> None:
    spec = parse_spec({"name": "j", "train": {"batch_size": 4, "input_size": [720, 405]}})
    assert spec.ladder() == [
        R(4, (720, 405), False, 1),
        R(2, (720, 405), False, 2),
        R(2, (720, 405), True, 2),
        R(2, (640, 360), True, 2),
    ]


def test_without_checkpointing_or_accumulation() -> None:
    spec = parse_spec({
        "name": "j",
        "oom": {"activation_checkpointing": False, "keep_effective_batch": False, "batch_sizes": [8, 3]},
    })
    assert spec.ladder() == [
        R(8, (960, 540), False, 1),
        R(3, (960, 540), False, 1),
        R(3, (720, 405), False, 1),
        R(3, (640, 360), False, 1),
    ]


def test_single_rung_ladder() -> None:
    ladder = build_ladder(2, (256, 144), [2], [(256, 144)], False, True)
    assert ladder == [R(2, (256, 144), False, 1)]


def test_start_off_ladder_is_refused() -> None:
    with pytest.raises(ValueError):
        build_ladder(1, (960, 540), [8, 4, 2], [(960, 540)], True, True)


@pytest.mark.parametrize("size, stride, expected", [
    ((720, 405), 2, (360, 203)),
    ((960, 540), 2, (480, 270)),
    ((640, 360), 2, (320, 180)),
    ((65, 65), 2, (33, 33)),
    ((65, 65), 4, (17, 17)),
])
def test_heatmap_size_rounds_up(size: tuple[int, int], stride: int, expected: tuple[int, int]) -> None:
    assert R(1, size, False, 1).heatmap_size(stride) == expected


def test_rung_description() -> None:
    assert R(2, (720, 405), True, 2).describe() == "batch 2, 720x405, accum 2, act-ckpt"
