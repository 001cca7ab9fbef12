"""The challenge metric over a process pool: the same scores as serial, bad frames missed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.truth import H, W, true_keypoints
from trainer.data.synthetic.generate import render_frame
from trainer.evaluation.challenge import evalai_score



@pytest.fixture(scope="module")
def frames() -> list[tuple[dict, dict]]:
    """(synthetic annotation, true camera) of 48 broadcast frames: enough for two workers."""
    rng = np.random.default_rng(7)
    return [render_frame(rng, W, H)[1:] for _ in range(48)]


def test_pool_and_serial_agree_and_garbage_is_missed(frames: list[tuple[dict, dict]]) -> None:
    keypoints = [true_keypoints(c) for _, c in frames[:48]]  # enough frames for two workers
    keypoints[3] = np.full((57, 3), np.nan)
    keypoints[4] = np.random.default_rng(1).uniform(0, 500, (57, 3))
    annotations = [a for a, _ in frames[:48]]
    pooled = evalai_score(keypoints, annotations, W, H, workers=2)
    assert pooled == evalai_score(keypoints, annotations, W, H, workers=1)
    assert pooled["missed"] >= 2 and pooled["completeness"] == pytest.approx(1 - pooled["missed"] / 48)
