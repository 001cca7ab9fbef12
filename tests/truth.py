"""Exact keypoints for tests: all 57 are fixed pitch points, so a true camera projects them exactly."""

from __future__ import annotations

import numpy as np
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.keypoints.table import XYZ

W, H = 960, 540


def true_keypoints(camera_json: dict, width: int = W, height: int = H) -> np.ndarray:
    """(57, 3): the true camera's projection of each point inside the image, NaN elsewhere."""
    camera = Camera(width, height)
    camera.from_json_parameters(camera_json)
    out = np.full((57, 3), np.nan)
    for index, xyz in enumerate(XYZ):
        p = camera.project_point(xyz)
        if p[2] > 0 and 0 <= p[0] <= width - 1 and 0 <= p[1] <= height - 1:
            out[index] = [p[0], p[1], 1.0]
    return out
