"""A frame with what the model saw drawn on it: the camera's pitch lines and the keypoints.

The lines are SoccerNet's ``get_polylines`` of the camera, the projection the challenge scores,
so what looks right here is what scores. Keypoints are drawn when at least faintly confident,
coloured from red (faint) to green (certain), numbered when a camera may use them; a banner
says whether there is a camera, or why not.
"""

from __future__ import annotations

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import get_polylines

from trainer.evaluation.challenge import POLYLINE_SAMPLING

DRAWN_CONFIDENCE = 0.1
"""Fainter keypoints are not drawn: an untrained channel's argmax lands anywhere."""
LINE_COLOUR = (0, 255, 255)  # BGR yellow
_SHIFT = 4  # sub-pixel drawing: coordinates × 16
_BORDER_TOLERANCE_PX = 1e-6


def _on_border(point: np.ndarray, width: int, height: int) -> bool:
    x, y = point
    return min(abs(x), abs(y), abs(x - (width - 1)), abs(y - (height - 1))) < _BORDER_TOLERANCE_PX


def polyline_runs(points: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """One pitch line's projected points as runs to draw: split where it leaves the image and comes back.

    ``get_polylines`` lists a line's in-image points with the border crossings where it exits
    and re-enters, all in one list; joined as one polyline, an exit and the next entry would be
    linked by a chord that is no pitch line. Two border points in a row are exactly that gap.
    """
    runs: list[np.ndarray] = []
    start = 0
    for i in range(1, len(points)):
        if _on_border(points[i - 1], width, height) and _on_border(points[i], width, height):
            runs.append(points[start:i])
            start = i
    runs.append(points[start:])
    return [run for run in runs if len(run) >= 2]


def pitch_lines(camera: dict, width: int, height: int) -> list[np.ndarray]:
    """The camera's projected pitch lines in pixels of a ``width`` × ``height`` frame, as drawable runs."""
    lines = []
    for points in get_polylines(dict(camera), width, height, POLYLINE_SAMPLING).values():
        lines += polyline_runs(np.array([[p["x"], p["y"]] for p in points], dtype=np.float64), width, height)
    return lines


def _confidence_colour(confidence: float) -> tuple[int, int, int]:
    """BGR from red (0) through yellow to green (1)."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return 0, int(255 * min(1.0, 2 * c)), int(255 * min(1.0, 2 * (1 - c)))


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    """Text with a dark outline, legible on grass and on white lines.

    The outline is the text itself shifted by a pixel each way: a thicker stroke would not do, as
    OpenCV 5's fonts grow wider, not only bolder, with thickness.
    """
    x, y = origin
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        cv2.putText(image, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, keypoints: np.ndarray, camera: dict | None, reason: str | None,
                 min_confidence: float) -> np.ndarray:
    """A BGR copy of the RGB ``image`` with the camera's pitch lines, the keypoints and a banner."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    height, width = canvas.shape[:2]
    scale = max(width, height) / 960
    if camera is not None:
        runs = [np.round(run * (1 << _SHIFT)).astype(np.int32) for run in pitch_lines(camera, width, height)]
        cv2.polylines(canvas, runs, False, LINE_COLOUR, max(1, round(2 * scale)), cv2.LINE_AA, _SHIFT)
    shown = 0
    for index, (x, y, confidence) in enumerate(keypoints):
        if not (np.isfinite(x) and np.isfinite(y) and confidence >= DRAWN_CONFIDENCE):
            continue
        centre = (int(round(x * (1 << _SHIFT))), int(round(y * (1 << _SHIFT))))
        colour = _confidence_colour(confidence)
        usable = confidence >= min_confidence
        cv2.circle(canvas, centre, round(5 * scale) << _SHIFT, colour, -1 if usable else 1, cv2.LINE_AA, _SHIFT)
        if usable:
            shown += 1
            _text(canvas, str(index), (int(x + 6 * scale), int(y - 6 * scale)), 0.45 * scale, colour)
    banner = f"camera from {shown} keypoints >= {min_confidence:g}" if camera is not None else f"no camera: {reason}"
    _text(canvas, banner, (int(8 * scale), int(22 * scale)), 0.55 * scale, (255, 255, 255))
    return canvas
