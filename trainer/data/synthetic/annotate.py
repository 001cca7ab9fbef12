"""The annotation of a synthetic frame: what a person would click on the visible part of each line.

Clicks follow SoccerNet's conventions: points normalised by (width − 1, height − 1), 2-6 per
straight line and 4-14 per visible arc, jittered like a hand, and no stub too short to click.
Through a distorting lens (``View.k1``) lines are curves in the image, and the clicks are placed
on those curves, as a person clicking on the picture would.
"""

from __future__ import annotations

import numpy as np
from SoccerNet.Evaluation.utils_calibration import SoccerPitch

from trainer.data.synthetic.camera import NEAR_M, View
from trainer.data.synthetic.pitch import CIRCLES, SEGMENTS

_MIN_LINE_PX = 12.0
"""Shorter visible stubs are not annotated: a person would not click them either."""
_CLICK_JITTER_PX = 0.4
"""A careful click's own scatter; ``click_noise`` adds to it (independent errors: in quadrature)."""
_CURVE_STEP_PX = 0.25
"""Sampling step along a distorted straight line: far below a click's scatter."""


def _clip_segment(
    p: np.ndarray, q: np.ndarray, normal: np.ndarray, offset: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of segment pq where normal·point + offset ≥ 0, or None."""
    dp, dq = float(p @ normal + offset), float(q @ normal + offset)
    if dp < 0 and dq < 0:
        return None
    if dp < 0:
        p = p + (q - p) * (dp / (dp - dq))
    elif dq < 0:
        q = p + (q - p) * (dp / (dp - dq))
    return p, q


def visible_segment(view: View, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of a 3D segment seen inside the image [0, W−1] × [0, H−1], in pixels."""
    cam = view.to_camera(np.stack([start, end]))
    seg = _clip_segment(cam[0], cam[1], np.array([0.0, 0.0, 1.0]), -NEAR_M)
    if seg is None:
        return None
    uv = view.pixels(np.stack(seg))
    w1, h1 = view.width - 1.0, view.height - 1.0
    segment: tuple[np.ndarray, np.ndarray] | None = (uv[0], uv[1])
    for normal, offset in (((1, 0), 0.0), ((-1, 0), w1), ((0, 1), 0.0), ((0, -1), h1)):
        segment = _clip_segment(segment[0], segment[1], np.array(normal, dtype=np.float64), offset)
        if segment is None:
            return None
    return segment


def _visible_runs(view: View, polyline3d: np.ndarray, closed: bool) -> list[np.ndarray]:
    """Maximal runs of consecutive samples of a 3D curve that fall inside the image."""
    cam = view.to_camera(polyline3d)
    uv = view.pixels(np.where(cam[:, 2:3] > NEAR_M, cam, 1.0))
    inside = (cam[:, 2] > NEAR_M) & (uv[:, 0] >= 0) & (uv[:, 0] <= view.width - 1)
    inside &= (uv[:, 1] >= 0) & (uv[:, 1] <= view.height - 1)
    if closed and not inside.all() and inside.any():
        shift = int(np.argmin(inside))
        uv, inside = np.roll(uv, -shift, axis=0), np.roll(inside, -shift)
    return _runs(uv, inside)


def _distorted_run(view: View, canvas: View, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """The longest visible piece of a straight 3D segment as the distorting lens curves it.

    The segment is clipped on the pinhole canvas (a straight line there), sampled finely, and
    every sample is moved through the lens; the samples inside the image form the run.
    """
    segment = visible_segment(canvas, start, end)
    if segment is None:
        return None
    length = float(np.linalg.norm(segment[1] - segment[0]))
    t = np.linspace(0.0, 1.0, max(2, int(length / _CURVE_STEP_PX) + 1))[:, None]
    straight = segment[0] + t * (segment[1] - segment[0])
    normalised = (straight - canvas.calibration[:2, 2]) @ np.linalg.inv(canvas.calibration[:2, :2]).T
    uv = view.normalised_to_pixels(normalised)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= view.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= view.height - 1)
    runs = _runs(uv, inside)
    return max(runs, key=len) if runs else None


def _runs(uv: np.ndarray, inside: np.ndarray) -> list[np.ndarray]:
    """Maximal runs of consecutive points flagged inside."""
    runs, start = [], None
    for k, flag in enumerate(np.append(inside, False)):
        if flag and start is None:
            start = k
        elif not flag and start is not None:
            runs.append(uv[start:k])
            start = None
    return runs


def _evenly(points: np.ndarray, count: int) -> np.ndarray:
    """`count` points spaced evenly by arc length along a polyline, ends included."""
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    at = np.linspace(0.0, lengths[-1], count)
    return np.c_[np.interp(at, lengths, points[:, 0]), np.interp(at, lengths, points[:, 1])]


def _clicks(rng: np.random.Generator, points: np.ndarray, width: int, height: int, sigma: float) -> list[dict]:
    """Jittered like human clicks, kept in the image, normalised the SoccerNet way."""
    jittered = points + rng.normal(0.0, sigma, points.shape)
    jittered[:, 0] = np.clip(jittered[:, 0], 0.0, width - 1.0) / (width - 1.0)
    jittered[:, 1] = np.clip(jittered[:, 1], 0.0, height - 1.0) / (height - 1.0)
    return [{"x": float(x), "y": float(y)} for x, y in jittered]


def _polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


def annotate(view: View, rng: np.random.Generator, click_noise: float = 0.0) -> dict[str, list[dict]]:
    """SoccerNet annotation of the view: 2-6 points per straight line, 4-14 per visible arc.

    ``click_noise`` (px, standard deviation) is a less careful hand's extra scatter; 0 keeps the
    careful clicks, drawn from ``rng`` exactly as before the option existed.
    """
    sigma = float(np.hypot(_CLICK_JITTER_PX, click_noise))
    canvas = view.undistorted_canvas()
    annotation: dict[str, list[dict]] = {}
    for name in SoccerPitch.lines_classes:
        if name in SEGMENTS:
            if view.k1 == 0.0:
                segment = visible_segment(view, *SEGMENTS[name])
                line = None if segment is None else np.stack(segment)
            else:
                line = _distorted_run(view, canvas, *SEGMENTS[name])
            if line is None:
                continue
            length = _polyline_length(line)
            if length < _MIN_LINE_PX:
                continue
            count = int(np.clip(2 + length // 150, 2, 6))
            annotation[name] = _clicks(rng, _evenly(line, count), view.width, view.height, sigma)
        elif name in CIRCLES:
            clicks = []
            for run in _visible_runs(view, CIRCLES[name], closed=name == "Circle central"):
                length = _polyline_length(run)
                if length >= 2 * _MIN_LINE_PX:
                    count = int(np.clip(length // 25, 4, 14))
                    clicks += _clicks(rng, _evenly(run, count), view.width, view.height, sigma)
            if clicks:
                annotation[name] = clicks
    return annotation
