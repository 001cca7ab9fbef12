"""Drawing a synthetic frame: the pitch, stands, boards, goals and players as a camera sees them.

Everything is drawn as projected pitch-plane (or goal-plane) polygons, so line widths follow the
perspective for free and a frame costs a few tens of milliseconds on one CPU core.
"""

from __future__ import annotations

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import SoccerPitch

from trainer.data.synthetic.annotate import annotate, visible_segment
from trainer.data.synthetic.camera import NEAR_M, View
from trainer.data.synthetic.pitch import CIRCLES, HALF_LENGTH, HALF_WIDTH, PITCH, SEGMENTS

_SUBPIXEL_SHIFT = 4
_GROUND_EXTENT = ((-58.0, 58.0), (-38.5, 62.0))
"""Grass around the pitch: boards stand at its far edge (y = -38.5) and behind the goals (|x| = 58)."""
_GOAL_DEPTH_M = 2.0


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


def _project_polygon(view: View, polygon3d: np.ndarray) -> np.ndarray:
    """Image polygon of a planar 3D polygon, clipped to the camera's front and near the image.

    Clipping at the near plane first keeps a polygon that reaches behind the camera from wrapping
    around through infinity; the coarse image-rectangle clip keeps coordinates small for fillPoly.
    """
    cam = _clip_polygon(view.to_camera(polygon3d), np.array([0.0, 0.0, 1.0]), -NEAR_M)
    if len(cam) < 3:
        return np.empty((0, 2))
    uv = view.pixels(cam)
    w, h = view.width, view.height
    for normal, offset in (((1, 0), w), ((-1, 0), 2 * w), ((0, 1), h), ((0, -1), 2 * h)):
        uv = _clip_polygon(uv, np.array(normal, dtype=np.float64), float(offset))
    return uv


def _project_quads(view: View, quads: np.ndarray) -> list[np.ndarray]:
    """Projected quads as fillPoly-ready int32 vertex arrays (subpixel, see _SUBPIXEL_SHIFT).

    Almost every quad lies wholly in front of the camera and projects to moderate coordinates, so
    those are projected in one batch; only the rest pay for polygon clipping.
    """
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 3)
    cam = view.to_camera(quads.reshape(-1, 3)).reshape(-1, 4, 3)
    front = (cam[:, :, 2] > NEAR_M).all(axis=1)
    uv = view.pixels(np.where(cam[:, :, 2:3] > NEAR_M, cam, 1.0).reshape(-1, 3)).reshape(-1, 4, 2)
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


def _fill(canvas: np.ndarray, view: View, quads: np.ndarray, color: float | tuple[float, ...]) -> None:
    """Anti-aliased fill of projected 3D quads into an image or a mask."""
    for polygon in _project_quads(view, quads):
        cv2.fillPoly(canvas, [polygon], color, cv2.LINE_AA, _SUBPIXEL_SHIFT)


def _ground_rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]], dtype=np.float64)


def _band(start: np.ndarray, end: np.ndarray, half_width: float, across: np.ndarray) -> np.ndarray:
    """A thin quad of the given half width around a segment, spread along the unit vector `across`."""
    off = across * half_width
    return np.array([start - off, end - off, end + off, start + off], dtype=np.float64)


def _line_quads(half_width: float) -> np.ndarray:
    """Painted pitch markings as thin ground quads: one per straight line, a strip per arc."""
    up = np.array([0.0, 0.0, 1.0])
    quads = []
    for name, (start, end) in SEGMENTS.items():
        if "Goal" in name:
            continue
        direction = (end - start) / np.linalg.norm(end - start)
        extend = direction * half_width
        quads.append(_band(start - extend, end + extend, half_width, np.cross(direction, up)))
    for name, points in CIRCLES.items():
        coarse = points[::2]
        ends = np.roll(coarse, -1, axis=0) if name == "Circle central" else coarse[1:]
        for a, b in zip(coarse, ends):
            direction = (b - a) / np.linalg.norm(b - a)
            pad = direction * 0.05
            quads.append(_band(a - pad, b + pad, half_width, np.cross(direction, up)))
    for mark in ("CENTER_MARK", "L_PENALTY_MARK", "R_PENALTY_MARK"):
        x, y, _ = PITCH.point_dict[mark]
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


def _draw_players(image: np.ndarray, view: View, rng: np.random.Generator) -> None:
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
        if (cam[:, 2] <= NEAR_M).any():
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


def _draw_scene(view: View, rng: np.random.Generator) -> np.ndarray:
    """The pitch as a pinhole view sees it, float32 BGR, before lighting, blur and sensor noise.

    Painter's order (stands, grass, stripes, shadow, lines, boards, nets, goal frames, players)
    is right for cameras on the pitch side of the boards, which is where broadcast cameras stand.
    """
    image = _crowd(rng, view.width, view.height)
    mask = np.zeros((view.height, view.width), dtype=np.uint8)

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
            segment = visible_segment(view, start, end)
            if segment is not None:
                (x0, y0), (x1, y1) = np.round(np.stack(segment)).astype(int)
                cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 160, 1, cv2.LINE_AA)
        _blend(image, mask, (235.0, 235.0, 235.0), 1.0)
        mask[:] = 0
        _fill(image, view, _goal_frame(side, _LINE_HALF_WIDTH), (245.0, 245.0, 245.0))

    _draw_players(image, view, rng)
    return image


def _through_lens(image: np.ndarray, view: View, canvas: View) -> np.ndarray:
    """Warp a picture drawn on the pinhole canvas into the distorting view: each output pixel
    samples the canvas where its undistorted position lies (grids, not point lists: ~30 ms)."""
    (fx, fy), (cx, cy) = np.diag(view.calibration)[:2], view.calibration[:2, 2]
    x = (np.arange(view.width, dtype=np.float64)[None, :] - cx) / fx
    y = (np.arange(view.height, dtype=np.float64)[:, None] - cy) / fy
    scale = view.undistortion_scale(np.sqrt(x * x + y * y))
    canvas_cx, canvas_cy = canvas.calibration[:2, 2]
    map_x = (x * scale * fx + canvas_cx).astype(np.float32)
    map_y = (y * scale * fy + canvas_cy).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def render_view(
    camera_json: dict, rng: np.random.Generator, width: int, height: int, click_noise: float = 0.0
) -> tuple[np.ndarray, dict]:
    """Draw the pitch as the camera sees it and annotate its lines: (BGR uint8 image, annotation).

    A camera with radial distortion is drawn on a pinhole canvas large enough for the whole
    view and warped through its lens, so painted lines bend exactly as the clicks on them do.
    ``click_noise`` is the annotator's extra scatter in px (see ``annotate``).
    """
    view = View.from_json(camera_json, width, height)
    canvas = view.undistorted_canvas()
    image = _draw_scene(canvas, rng)
    if canvas is not view:
        image = _through_lens(image, view, canvas)
    light = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.15), width, dtype=np.float32)
    image *= light[None, :, None]
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 0.9))
    noise = rng.standard_normal(size=(height, width, 1), dtype=np.float32)
    image += noise * np.float32(rng.uniform(1.5, 5.0))
    return np.clip(image, 0, 255, out=image).astype(np.uint8), annotate(view, rng, click_noise)
