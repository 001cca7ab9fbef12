"""SoccerNet's pitch as 3D geometry per line class: segments for straight lines, polylines for arcs.

Both the renderer (painted markings) and the annotator (clicks on visible lines) draw from these,
so what is painted is what is clicked.
"""

from __future__ import annotations

import math

import numpy as np
from SoccerNet.Evaluation.utils_calibration import SoccerPitch

HALF_LENGTH = 52.5
HALF_WIDTH = 34.0
PITCH = SoccerPitch()


def _arc(center: np.ndarray, start_deg: float, end_deg: float, count: int) -> np.ndarray:
    angles = np.radians(np.linspace(start_deg, end_deg, count))
    r = SoccerPitch.CENTER_CIRCLE_RADIUS
    return np.c_[center[0] + r * np.cos(angles), center[1] + r * np.sin(angles), np.zeros(count)]


_ARC_HALF_ANGLE = math.degrees(
    math.acos(
        (SoccerPitch.PENALTY_AREA_LENGTH - SoccerPitch.GOAL_LINE_TO_PENALTY_MARK) / SoccerPitch.CENTER_CIRCLE_RADIUS
    )
)
"""Half the angle of the painted penalty arc (outside the penalty area), seen from the penalty mark."""
CIRCLES: dict[str, np.ndarray] = {
    "Circle central": _arc(PITCH.point_dict["CENTER_MARK"], 0.0, 360.0, 241)[:-1],
    "Circle left": _arc(PITCH.point_dict["L_PENALTY_MARK"], -_ARC_HALF_ANGLE, _ARC_HALF_ANGLE, 97),
    "Circle right": _arc(
        PITCH.point_dict["R_PENALTY_MARK"], 180 - _ARC_HALF_ANGLE, 180 + _ARC_HALF_ANGLE, 97
    ),
}
SEGMENTS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    name: (np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    for name, (a, b) in PITCH.line_extremities.items()
    if "Circle" not in name
}
