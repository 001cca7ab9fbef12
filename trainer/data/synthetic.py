"""Synthetic SoccerNet-format frames rendered from random broadcast cameras.

The demo job and the tests must train and check on data of the real format without a download, so
this renders frames the way SoccerNet stores them: ``NNNNN.jpg`` plus ``NNNNN.json`` (line class →
clicked points normalised by (width − 1, height − 1)). The true camera is written beside each frame
as ``NNNNN.camera.json`` (SoccerNet's ``Camera.to_json_parameters`` form), which gives exact ground
truth for every keypoint, because all 57 are fixed pitch points.

Everything is drawn as projected pitch-plane (or goal-plane) polygons, so line widths follow the
perspective for free and a frame costs a few tens of milliseconds on one CPU core.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import Camera, SoccerPitch

HALF_LENGTH = 52.5
HALF_WIDTH = 34.0
_PITCH = SoccerPitch()
_NEAR_M = 0.5
"""Pitch geometry closer to the camera plane than this is clipped away before projection."""
_MIN_LINE_PX = 12.0
"""Shorter visible stubs are not annotated: a person would not click them either."""
_CLICK_JITTER_PX = 0.4
_MIN_LINE_CLASSES = 3
_CAMERA_TRIES = 20
_SUBPIXEL_SHIFT = 4
_GROUND_EXTENT = ((-58.0, 58.0), (-38.5, 62.0))
"""Grass around the pitch: boards stand at its far edge (y = -38.5) and behind the goals (|x| = 58)."""
_GOAL_DEPTH_M = 2.0


@dataclass(frozen=True)
class _View:
    """A pinhole camera as matrices: what the renderer needs from SoccerNet's Camera."""

    rotation: np.ndarray
    position: np.ndarray
    calibration: np.ndarray
    width: int
    height: int

    @classmethod
    def from_json(cls, camera_json: dict, width: int, height: int) -> "_View":
        camera = Camera(width, height)
        camera.from_json_parameters(camera_json)
        return cls(camera.rotation, camera.position, camera.calibration, width, height)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T

    def pixels(self, camera_points: np.ndarray) -> np.ndarray:
        h = camera_points @ self.calibration.T
        return h[:, :2] / h[:, 2:3]

    def ground_homography(self) -> np.ndarray:
        """Pitch plane (x, y, 1) → image; SoccerNet's z = 0 plane."""
        k, r = self.calibration, self.rotation
        return k @ np.column_stack((r[:, 0], r[:, 1], -r @ self.position))


def _clip_polygon(polygon: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland–Hodgman against one half-space, normal·p + offset ≥ 0 (any dimension)."""
    if len(polygon) == 0:
        return polygon
    d = polygon @ normal + offset
    out = []
    for k in range(len(polygon)):
        p, q, dp, dq = polygon[k], polygon[(k + 1) % len(polygon)], d[k], d[(k + 1) % len(polygon)]
        if dp >= 0:
            out.append(p)
        if (dp >= 0) != (dq >= 0):
            out.append(p + (q - p) * (dp / (dp - dq)))
    return np.array(out, dtype=np.float64).reshape(-1, polygon.shape[1])


def _project_polygon(view: _View, polygon3d: np.ndarray) -> np.ndarray:
    """Image polygon of a planar 3D polygon, clipped to the camera's front and near the image.

    Clipping at the near plane first keeps a polygon that reaches behind the camera from wrapping
    around through infinity; the coarse image-rectangle clip keeps coordinates small for fillPoly.
    """
    cam = _clip_polygon(view.to_camera(polygon3d), np.array([0.0, 0.0, 1.0]), -_NEAR_M)
    if len(cam) < 3:
        return np.empty((0, 2))
    uv = view.pixels(cam)
    w, h = view.width, view.height
    for normal, offset in (((1, 0), w), ((-1, 0), 2 * w), ((0, 1), h), ((0, -1), 2 * h)):
        uv = _clip_polygon(uv, np.array(normal, dtype=np.float64), float(offset))
    return uv


def _project_quads(view: _View, quads: np.ndarray) -> list[np.ndarray]:
    """Projected quads as fillPoly-ready int32 vertex arrays (subpixel, see _SUBPIXEL_SHIFT).

    Almost every quad lies wholly in front of the camera and projects to moderate coordinates, so
    those are projected in one batch; only the rest pay for polygon clipping.
    """
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 3)
    cam = view.to_camera(quads.reshape(-1, 3)).reshape(-1, 4, 3)
    front = (cam[:, :, 2] > _NEAR_M).all(axis=1)
    uv = view.pixels(np.where(cam[:, :, 2:3] > _NEAR_M, cam, 1.0).reshape(-1, 3)).reshape(-1, 4, 2)
    limit = 4.0 * max(view.width, view.height)
    fast = front & (np.abs(uv) < limit).all(axis=(1, 2))
    off_image = (uv[:, :, 0].max(axis=1) < 0) | (uv[:, :, 0].min(axis=1) > view.width)
    off_image |= (uv[:, :, 1].max(axis=1) < 0) | (uv[:, :, 1].min(axis=1) > view.height)
    scale = float(1 << _SUBPIXEL_SHIFT)
    polygons = [np.round(q * scale).astype(np.int32) for q in uv[fast & ~off_image]]
    for quad in quads[~fast]:
        clipped = _project_polygon(view, quad)
        if len(clipped) >= 3:
            polygons.append(np.round(clipped * scale).astype(np.int32))
    return polygons


def _fill(canvas: np.ndarray, view: _View, quads: np.ndarray, color: float | tuple[float, ...]) -> None:
    """Anti-aliased fill of projected 3D quads into an image or a mask."""
    for polygon in _project_quads(view, quads):
        cv2.fillPoly(canvas, [polygon], color, cv2.LINE_AA, _SUBPIXEL_SHIFT)


def _ground_rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]], dtype=np.float64)


def _band(start: np.ndarray, end: np.ndarray, half_width: float, across: np.ndarray) -> np.ndarray:
    """A thin quad of the given half width around a segment, spread along the unit vector `across`."""
    off = across * half_width
    return np.array([start - off, end - off, end + off, start + off], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Pitch geometry as 3D polylines, per SoccerNet line class
# --------------------------------------------------------------------------------------------


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
_CIRCLES: dict[str, np.ndarray] = {
    "Circle central": _arc(_PITCH.point_dict["CENTER_MARK"], 0.0, 360.0, 241)[:-1],
    "Circle left": _arc(_PITCH.point_dict["L_PENALTY_MARK"], -_ARC_HALF_ANGLE, _ARC_HALF_ANGLE, 97),
    "Circle right": _arc(
        _PITCH.point_dict["R_PENALTY_MARK"], 180 - _ARC_HALF_ANGLE, 180 + _ARC_HALF_ANGLE, 97
    ),
}
_SEGMENTS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    name: (np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    for name, (a, b) in _PITCH.line_extremities.items()
    if "Circle" not in name
}


# --------------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------------


def camera_looking_at(
    position: np.ndarray, target: np.ndarray, fov_deg: float, roll_deg: float, width: int, height: int
) -> dict:
    """SoccerNet camera JSON for a camera at `position` aimed at `target` (z < 0 is above ground).

    SoccerNet's optical axis is (sin pan·sin tilt, −cos pan·sin tilt, cos tilt), so pan and tilt
    follow from the viewing direction. The dict goes through Camera twice so that what is saved is
    exactly what from_json_parameters will rebuild.
    """
    d = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    tilt = math.acos(d[2] / np.linalg.norm(d))
    pan = math.atan2(d[0], -d[1])
    focal = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    camera = Camera(width, height)
    camera.from_json_parameters(
        {
            "pan_degrees": math.degrees(pan),
            "tilt_degrees": math.degrees(tilt),
            "roll_degrees": roll_deg,
            "position_meters": [float(v) for v in position],
            "x_focal_length": focal,
            "y_focal_length": focal,
            "principal_point": [width / 2.0, height / 2.0],
            "radial_distortion": [0.0] * 6,
            "tangential_distortion": [0.0] * 2,
            "thin_prism_distortion": [0.0] * 4,
        }
    )
    saved = camera.to_json_parameters()
    return {key: (float(v) if isinstance(v, float) else v) for key, v in saved.items()}


_SHOTS = (
    # name, weight, target x range (mirrored for the right half), target y range, fov range (deg)
    ("centre", 0.25, (-12.0, 12.0), (-18.0, 14.0), (22.0, 50.0)),
    ("half", 0.35, (15.0, 42.0), (-20.0, 18.0), (20.0, 50.0)),
    ("goal", 0.25, (40.0, 51.0), (-12.0, 14.0), (10.0, 24.0)),
    ("wide", 0.15, (-25.0, 25.0), (-10.0, 6.0), (48.0, 62.0)),
)


def sample_camera(rng: np.random.Generator, width: int, height: int) -> dict:
    """A main broadcast camera: behind the 'bottom' touch line, 12-22 m up, aimed into the pitch.

    Shots mix the centre, either half, goal-area zooms and wide views, so every kind of keypoint
    appears and both halves are equally common (SoccerNet labels as seen from this side).
    """
    weights = np.array([shot[1] for shot in _SHOTS])
    _, _, xs, ys, fovs = _SHOTS[rng.choice(len(_SHOTS), p=weights / weights.sum())]
    side = 1.0 if rng.random() < 0.5 else -1.0
    position = np.array([rng.uniform(-12.0, 12.0), rng.uniform(55.0, 70.0), -rng.uniform(12.0, 22.0)])
    target_x = rng.uniform(*xs) * (side if xs[0] >= 0 else 1.0)
    target = np.array([target_x, rng.uniform(*ys), 0.0])
    fov = math.exp(rng.uniform(math.log(fovs[0]), math.log(fovs[1])))
    return camera_looking_at(position, target, fov, rng.uniform(-1.5, 1.5), width, height)


# --------------------------------------------------------------------------------------------
# Annotation: what a person would click on the visible part of each line
# --------------------------------------------------------------------------------------------


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


def _visible_segment(view: _View, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of a 3D segment seen inside the image [0, W−1] × [0, H−1], in pixels."""
    cam = view.to_camera(np.stack([start, end]))
    seg = _clip_segment(cam[0], cam[1], np.array([0.0, 0.0, 1.0]), -_NEAR_M)
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


def _visible_runs(view: _View, polyline3d: np.ndarray, closed: bool) -> list[np.ndarray]:
    """Maximal runs of consecutive samples of a 3D curve that fall inside the image."""
    cam = view.to_camera(polyline3d)
    uv = view.pixels(np.where(cam[:, 2:3] > _NEAR_M, cam, 1.0))
    inside = (cam[:, 2] > _NEAR_M) & (uv[:, 0] >= 0) & (uv[:, 0] <= view.width - 1)
    inside &= (uv[:, 1] >= 0) & (uv[:, 1] <= view.height - 1)
    if closed and not inside.all() and inside.any():
        shift = int(np.argmin(inside))
        uv, inside = np.roll(uv, -shift, axis=0), np.roll(inside, -shift)
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


def _clicks(rng: np.random.Generator, points: np.ndarray, width: int, height: int) -> list[dict]:
    """Jittered like human clicks, kept in the image, normalised the SoccerNet way."""
    jittered = points + rng.normal(0.0, _CLICK_JITTER_PX, points.shape)
    jittered[:, 0] = np.clip(jittered[:, 0], 0.0, width - 1.0) / (width - 1.0)
    jittered[:, 1] = np.clip(jittered[:, 1], 0.0, height - 1.0) / (height - 1.0)
    return [{"x": float(x), "y": float(y)} for x, y in jittered]


def annotate(view: _View, rng: np.random.Generator) -> dict[str, list[dict]]:
    """SoccerNet annotation of the view: 2-6 points per straight line, 4-14 per visible arc."""
    annotation: dict[str, list[dict]] = {}
    for name in SoccerPitch.lines_classes:
        if name in _SEGMENTS:
            segment = _visible_segment(view, *_SEGMENTS[name])
            if segment is None:
                continue
            length = float(np.linalg.norm(segment[1] - segment[0]))
            if length < _MIN_LINE_PX:
                continue
            count = int(np.clip(2 + length // 150, 2, 6))
            annotation[name] = _clicks(rng, _evenly(np.stack(segment), count), view.width, view.height)
        elif name in _CIRCLES:
            clicks = []
            for run in _visible_runs(view, _CIRCLES[name], closed=name == "Circle central"):
                length = float(np.linalg.norm(np.diff(run, axis=0), axis=1).sum()) if len(run) > 1 else 0.0
                if length >= 2 * _MIN_LINE_PX:
                    count = int(np.clip(length // 25, 4, 14))
                    clicks += _clicks(rng, _evenly(run, count), view.width, view.height)
            if clicks:
                annotation[name] = clicks
    return annotation


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _line_quads(half_width: float) -> np.ndarray:
    """Painted pitch markings as thin ground quads: one per straight line, a strip per arc."""
    up = np.array([0.0, 0.0, 1.0])
    quads = []
    for name, (start, end) in _SEGMENTS.items():
        if "Goal" in name:
            continue
        direction = (end - start) / np.linalg.norm(end - start)
        extend = direction * half_width
        quads.append(_band(start - extend, end + extend, half_width, np.cross(direction, up)))
    for name, points in _CIRCLES.items():
        coarse = points[::2]
        ends = np.roll(coarse, -1, axis=0) if name == "Circle central" else coarse[1:]
        for a, b in zip(coarse, ends):
            direction = (b - a) / np.linalg.norm(b - a)
            pad = direction * 0.05
            quads.append(_band(a - pad, b + pad, half_width, np.cross(direction, up)))
    for mark in ("CENTER_MARK", "L_PENALTY_MARK", "R_PENALTY_MARK"):
        x, y, _ = _PITCH.point_dict[mark]
        quads.append(_ground_rect(x - 0.11, x + 0.11, y - 0.11, y + 0.11))
    return np.array(quads)


def _goal_frame(side: float, half_width: float) -> np.ndarray:
    """Posts and crossbar as thin quads in the goal-line plane, centred on SoccerNet's goal lines."""
    x, half_goal, height = side * HALF_LENGTH, SoccerPitch.GOAL_LENGTH / 2.0, SoccerPitch.GOAL_HEIGHT
    along_y, along_z = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    quads = [
        _band(np.array([x, y, 0.0]), np.array([x, y, -height - half_width]), half_width, along_y)
        for y in (-half_goal, half_goal)
    ]
    bar_start = np.array([x, -half_goal - half_width, -height])
    bar_end = np.array([x, half_goal + half_width, -height])
    quads.append(_band(bar_start, bar_end, half_width, along_z))
    return np.array(quads)


def _goal_net(side: float) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Net panels (back, roof, sides) and the mesh strings drawn across the back and roof."""
    x0, x1 = side * HALF_LENGTH, side * (HALF_LENGTH + _GOAL_DEPTH_M)
    g, top, back_top = SoccerPitch.GOAL_LENGTH / 2.0, -SoccerPitch.GOAL_HEIGHT, -2.0
    panels = [
        [[x1, -g, 0], [x1, g, 0], [x1, g, back_top], [x1, -g, back_top]],
        [[x0, -g, top], [x0, g, top], [x1, g, back_top], [x1, -g, back_top]],
        *([[x0, y, 0], [x1, y, 0], [x1, y, back_top], [x0, y, top]] for y in (-g, g)),
    ]
    strings = []
    for y in np.arange(-g, g + 1e-6, 0.5):
        strings.append((np.array([x1, y, 0.0]), np.array([x1, y, back_top])))
        strings.append((np.array([x0, y, top]), np.array([x1, y, back_top])))
    for z in np.arange(0.0, back_top - 1e-6, -0.5):
        strings.append((np.array([x1, -g, z]), np.array([x1, g, z])))
    return np.array(panels, dtype=np.float64), strings


def _boards() -> np.ndarray:
    """Advertising boards, 0.9 m high, 6 m panels: along the far edge of the grass and behind the goals."""
    (gx0, gx1), (gy0, _) = _GROUND_EXTENT
    up = np.array([0.0, 0.0, 1.0])
    quads = [
        _band(np.array([x, gy0, -0.45]), np.array([x + 6.0, gy0, -0.45]), 0.45, up) for x in np.arange(gx0, gx1, 6.0)
    ]
    for side in (-1.0, 1.0):
        quads += [
            _band(np.array([side * gx1, y, -0.45]), np.array([side * gx1, y + 6.0, -0.45]), 0.45, up)
            for y in np.arange(-30.0, 30.0, 6.0)
        ]
    return np.array(quads)


_LINE_HALF_WIDTH = 0.06
_LINE_QUADS = _line_quads(_LINE_HALF_WIDTH)
_BOARD_QUADS = _boards()


def _crowd(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Stands: blocky colour noise at spectator scale, darker towards the top."""
    shape = (max(height // 7, 1), max(width // 7, 1))
    tint = rng.uniform(0.5, 0.9, size=(1, 1, 3)).astype(np.float32)
    small = rng.uniform(25, 190, size=(*shape, 1)).astype(np.float32) * 0.6
    small = small + rng.uniform(0, 90, size=(*shape, 3)).astype(np.float32) * tint
    crowd = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return crowd * np.linspace(0.6, 1.0, height, dtype=np.float32)[:, None, None]


def _draw_players(image: np.ndarray, view: _View, rng: np.random.Generator) -> None:
    """A few players as shadow/shorts/shirt/head blobs on the visible pitch; they occlude lines."""
    inverse = np.linalg.inv(view.ground_homography())
    kits = rng.uniform(0, 255, size=(2, 2, 3))
    for _ in range(int(rng.integers(0, 12))):
        u, v = rng.uniform(0, view.width), rng.uniform(view.height * 0.25, view.height)
        g = inverse @ np.array([u, v, 1.0])
        if g[2] == 0:
            continue
        foot = np.array([g[0] / g[2], g[1] / g[2], 0.0])
        if abs(foot[0]) > HALF_LENGTH + 3 or abs(foot[1]) > HALF_WIDTH + 3:
            continue
        cam = view.to_camera(np.stack([foot, foot + np.array([0.0, 0.0, -1.8])]))
        if (cam[:, 2] <= _NEAR_M).any():
            continue
        (fx, fy), (hx, hy) = view.pixels(cam)
        tall = fy - hy
        if tall < 4:
            continue
        shirt, shorts = kits[int(rng.integers(0, 2))]
        blobs = (
            ((fx, fy), (0.25, 0.06), (20.0, 40.0, 20.0)),
            ((fx, fy - tall * 0.3), (0.09, 0.3), tuple(shorts)),
            ((fx, fy - tall * 0.6), (0.12, 0.22), tuple(shirt)),
            ((hx, hy + tall * 0.07), (0.07, 0.07), (90.0, 120.0, 170.0)),
        )
        for (cx, cy), (ax, ay), color in blobs:
            axes = (max(int(tall * ax), 1), max(int(tall * ay), 1))
            cv2.ellipse(image, (int(cx), int(cy)), axes, 0, 0, 360, color, -1, cv2.LINE_AA)


def _blend(image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float], opacity: float) -> None:
    """image ← image + a·(color − image) with a = mask·opacity, only over the mask's bounding box."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    roi = image[y : y + h, x : x + w]
    alpha = mask[y : y + h, x : x + w, None].astype(np.float32) * (opacity / 255.0)
    roi += alpha * (np.array(color, dtype=np.float32) - roi)


def render_view(
    camera_json: dict, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, dict]:
    """Draw the pitch as the camera sees it and annotate its lines: (BGR uint8 image, annotation).

    Painter's order (stands, grass, stripes, shadow, lines, boards, nets, goal frames, players)
    is right for cameras on the pitch side of the boards, which is where broadcast cameras stand.
    """
    view = _View.from_json(camera_json, width, height)
    image = _crowd(rng, width, height)
    mask = np.zeros((height, width), dtype=np.uint8)

    grass = np.array([rng.uniform(30, 60), rng.uniform(95, 150), rng.uniform(35, 75)])
    (gx0, gx1), (gy0, gy1) = _GROUND_EXTENT
    _fill(image, view, _ground_rect(gx0, gx1, gy0, gy1), tuple(grass * rng.uniform(0.85, 0.95)))
    stripes = int(rng.choice([14, 18, 20, 22]))
    edges = np.linspace(-HALF_LENGTH, HALF_LENGTH, stripes + 1)
    light = rng.uniform(0.06, 0.18)
    for k in range(stripes):
        stripe = _ground_rect(edges[k], edges[k + 1], -HALF_WIDTH - 1.5, HALF_WIDTH + 1.5)
        _fill(image, view, stripe, tuple(grass * (1.0 + light * (k % 2))))
    if rng.random() < 0.35:
        edge, slant = rng.uniform(-HALF_WIDTH, 0.0), rng.uniform(-0.2, 0.2)
        shadow = np.array(
            [[gx0, gy0, 0], [gx1, gy0, 0], [gx1, edge + slant * gx1, 0], [gx0, edge + slant * gx0, 0]], float
        )
        _fill(mask, view, shadow, 255)
        _blend(image, mask, (0.0, 0.0, 0.0), rng.uniform(0.25, 0.45))
        mask[:] = 0

    _fill(image, view, _LINE_QUADS, tuple(rng.uniform(205, 250, 3)))

    colors = rng.uniform(20, 255, size=(len(_BOARD_QUADS), 3))
    for board, color in zip(_BOARD_QUADS, colors):
        _fill(image, view, board, tuple(color))

    for side in (-1.0, 1.0):
        panels, strings = _goal_net(side)
        _fill(mask, view, panels, 70)
        for start, end in strings:
            segment = _visible_segment(view, start, end)
            if segment is not None:
                (x0, y0), (x1, y1) = np.round(np.stack(segment)).astype(int)
                cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 160, 1, cv2.LINE_AA)
        _blend(image, mask, (235.0, 235.0, 235.0), 1.0)
        mask[:] = 0
        _fill(image, view, _goal_frame(side, _LINE_HALF_WIDTH), (245.0, 245.0, 245.0))

    _draw_players(image, view, rng)
    light = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.15), width, dtype=np.float32)
    image *= light[None, :, None]
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 0.9))
    noise = rng.standard_normal(size=(height, width, 1), dtype=np.float32)
    image += noise * np.float32(rng.uniform(1.5, 5.0))
    return np.clip(image, 0, 255, out=image).astype(np.uint8), annotate(view, rng)


def render_frame(
    rng: np.random.Generator, width: int = 960, height: int = 540
) -> tuple[np.ndarray, dict, dict]:
    """One synthetic frame from a random broadcast camera: (BGR image, annotation, camera JSON).

    Cameras that would show fewer than three lines are redrawn from the same generator, so the
    result stays a function of the generator's state.
    """
    for _ in range(_CAMERA_TRIES):
        camera_json = sample_camera(rng, width, height)
        view = _View.from_json(camera_json, width, height)
        if len(annotate(view, np.random.default_rng(0))) >= _MIN_LINE_CLASSES:
            break
    image, annotation = render_view(camera_json, rng, width, height)
    return image, annotation, camera_json


def _write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so a file that exists is complete even if generation was killed."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def frame_paths(out_dir: Path, index: int) -> tuple[Path, Path, Path]:
    """(image, annotation, camera) paths of frame `index`, named like SoccerNet's 5-digit frames."""
    stem = f"{index:05d}"
    return out_dir / f"{stem}.jpg", out_dir / f"{stem}.json", out_dir / f"{stem}.camera.json"


def generate(
    out_dir: Path, frames: int, seed: int, width: int = 960, height: int = 540, start_index: int = 0
) -> list[Path]:
    """Write frames start_index .. start_index + frames − 1 and return their image paths.

    Frame i draws from a generator seeded by (seed, i), so any subset can be made independently
    (in parallel, or resumed after a kill) and comes out the same; complete frames are skipped.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(start_index, start_index + frames):
        image_path, annotation_path, camera_path = frame_paths(out_dir, index)
        images.append(image_path)
        if image_path.exists() and annotation_path.exists() and camera_path.exists():
            continue
        image, annotation, camera_json = render_frame(np.random.default_rng([seed, index]), width, height)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for frame {index}")
        _write_atomic(image_path, jpeg.tobytes())
        _write_atomic(camera_path, json.dumps(camera_json, indent=1).encode())
        _write_atomic(annotation_path, json.dumps(annotation).encode())
    return images
