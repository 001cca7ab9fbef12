"""The keypoint cache derives a split over a process pool: the result must not depend on how many
processes did the work."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.cache import MIN_FRAMES_PER_WORKER, load_keypoints
from trainer.data.keypoints.derivation import derive_keypoints
from trainer.data.soccernet import NATIVE_SIZE, read_split
from trainer.data.synthetic.generate import generate

FRAMES = 2 * MIN_FRAMES_PER_WORKER
"""Enough frames that two workers are really started (the pool skips itself for fewer)."""


def test_one_and_two_workers_give_identical_keypoints(tmp_path: Path) -> None:
    data = tmp_path / "frames"
    generate(data, frames=FRAMES, seed=21, click_noise=1.0, distortion=0.03)
    split = read_split(data)
    serial, stats = load_keypoints(split, cache_path=tmp_path / "one.npz", workers=1)
    parallel, parallel_stats = load_keypoints(split, cache_path=tmp_path / "two.npz", workers=2)
    assert stats.derived == parallel_stats.derived == FRAMES
    np.testing.assert_array_equal(serial, parallel)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    here = np.stack([derive_keypoints(frame.annotation, *NATIVE_SIZE) for frame in split.frames])
    np.testing.assert_array_equal(parallel, here)
    assert (parallel[..., 2] == 1.0).sum() > 5 * FRAMES  # real keypoints, not an empty result twice
