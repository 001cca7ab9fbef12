"""The 57 pitch keypoints and their derivation from SoccerNet line annotations.

SoccerNet labels lines, not points, but a heatmap model needs points. Every keypoint is a fixed
point of the pitch (``keypoints57.tsv``), so each can be found in an image from the annotated lines:
two fitted lines meet at a corner; a fitted line crosses a circle's ellipse; a tangent from a known
point touches an ellipse; anything else goes through a homography fitted to the ground points found.

This module is pure geometry on dicts and arrays (the table is read once at import): no image I/O,
so the loader can derive once per dataset and cache the result under ``KEYPOINTS_VERSION``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import least_squares
from SoccerNet.Evaluation.utils_calibration import SoccerPitch

KEYPOINTS_VERSION = "kp57-derive-1"
"""Bumped whenever the derivation changes, so caches keyed on it are rebuilt."""

NUM_KEYPOINTS = 57

VISIBLE = 1.0
INVISIBLE = 0.0
UNKNOWN = -1.0
VISIBILITY_MARGIN_PX = 3.0
"""How far outside the image (px) a point still counts as visible: about one heatmap sigma."""

_TABLE_PATH = Path(__file__).with_name("keypoints57.tsv")
_IGNORED_CLASSES = frozenset({"Line unknown", "Goal unknown"})
_LOCAL_FIT_MIN_POINTS = 6
"""A line with this many points is fitted only near where it is used: lens curvature bends long lines."""
_MIN_INTERSECTION_ANGLE = math.radians(2.0)
"""Below this angle two fitted lines meet too far from their data for the point to be trusted."""
_RANSAC_THRESHOLD_PX = 3.0
_MIN_WORLD_SPREAD_M = 1.0
"""Ground points closer than this to one line leave a homography undetermined across it."""
_MIN_ELLIPSE_ASPECT = 0.08
"""A pitch circle seen from a broadcast camera (≥ ~6° above it) is never flatter than this."""
_MIN_ARC_COVERAGE = math.radians(40.0)
"""A conic fitted to a shorter arc is too unconstrained to extrapolate from."""
_ARC_EXTRAPOLATION = math.radians(15.0)
"""How far beyond the annotated arc (in ellipse angle) a crossing or tangent point is trusted."""
_MIN_PAIR_LENGTH_PX = 2.0
_CONIC_REFERENCE_MIN_OFFSET_M = 3.0
"""A circle centre this far off a chord reliably tells its two crossings apart (see _conic_rule)."""


@dataclass(frozen=True)
class Keypoint:
    """One row of keypoints57.tsv: a fixed pitch point and how it is found in an image."""

    index: int
    name: str
    kind: str
    xyz: tuple[float, float, float]
    flip: int
    mirror: int
    derived_from: str


def _load_table(path: Path) -> tuple[Keypoint, ...]:
    """Read the shipped table; the table, not code, is the single source of the 57 points."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("index\t"):
            continue
        cells = line.split("\t")
        rows.append(
            Keypoint(
                index=int(cells[0]),
                name=cells[1],
                kind=cells[2],
                xyz=(float(cells[3]), float(cells[4]), float(cells[5])),
                flip=int(cells[6]),
                mirror=int(cells[7]),
                derived_from=cells[8].strip(),
            )
        )
    if [kp.index for kp in rows] != list(range(NUM_KEYPOINTS)):
        raise ValueError(f"{path} must list keypoints 0..{NUM_KEYPOINTS - 1} in order")
    return tuple(rows)


KEYPOINTS: tuple[Keypoint, ...] = _load_table(_TABLE_PATH)
FLIP_INDEX: np.ndarray = np.array([kp.flip for kp in KEYPOINTS], dtype=np.int64)
MIRROR_INDEX: np.ndarray = np.array([kp.mirror for kp in KEYPOINTS], dtype=np.int64)
_XYZ = np.array([kp.xyz for kp in KEYPOINTS], dtype=np.float64)
_INDEX_BY_NAME = {kp.name: kp.index for kp in KEYPOINTS}


# --------------------------------------------------------------------------------------------
# Plane geometry: lines as point + unit direction, ellipses as centre, semi-axes and angle.
# The same code serves image ellipses and the pitch's circles, so root choices can be made by
# comparing an image configuration with its pitch counterpart.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line2:
    """An infinite 2D line; point + unit direction avoids the scale problems of (a, b, c)."""

    point: np.ndarray
    direction: np.ndarray


@dataclass(frozen=True)
class Ellipse:
    """A 2D ellipse: centre, semi-axes (a along the rotated x axis, b along y), angle in radians."""

    center: np.ndarray
    a: float
    b: float
    angle: float

    def rotation(self) -> np.ndarray:
        """Columns: the ellipse's own x and y axes in the plane."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    def to_local(self, p: np.ndarray) -> np.ndarray:
        """Coordinates in the ellipse's own frame, where it is x²/a² + y²/b² = 1."""
        return (np.asarray(p, dtype=np.float64) - self.center) @ self.rotation()

    def to_global(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) @ self.rotation().T + self.center

    def angles(self, points: np.ndarray) -> np.ndarray:
        """Parametric angle of each point, the same along the curve whatever the eccentricity."""
        q = self.to_local(points)
        return np.arctan2(q[:, 1] / self.b, q[:, 0] / self.a)

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """Approximate distance of each point to the curve (radial, exact for circles)."""
        q = self.to_local(points)
        r = np.hypot(q[:, 0] / self.a, q[:, 1] / self.b)
        return np.linalg.norm(q, axis=1) * np.abs(1.0 - 1.0 / np.maximum(r, 1e-12))


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def _orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Signed area of triangle abc; its sign survives any projective map that keeps the plane's side."""
    return _cross(b - a, c - a)


def _tls_line(points: np.ndarray) -> Line2:
    """Total least squares line: both coordinates are noisy clicks, so no axis is special."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre)
    return Line2(centre, vt[0] / np.linalg.norm(vt[0]))


def _line_residuals(line: Line2, points: np.ndarray) -> np.ndarray:
    return np.abs((points - line.point) @ np.array([-line.direction[1], line.direction[0]]))


def fit_line(points: np.ndarray, near: np.ndarray | None = None) -> Line2 | None:
    """Fit a line robustly; with many points and an anchor, only near the anchor.

    Annotators click more points on lines that the lens bends, so a long, many-point line is
    fitted from its points nearest to where it is used (an intersection) to follow the curve
    locally. One trimming pass drops a stray click without needing RANSAC on 2..10 points.
    """
    if len(points) < 2:
        return None
    if near is not None and len(points) >= _LOCAL_FIT_MIN_POINTS:
        keep = max(4, math.ceil(len(points) / 2))
        order = np.argsort(np.linalg.norm(points - near, axis=1))
        points = points[order[:keep]]
    if np.ptp(points, axis=0).max() < 1e-6:
        return None
    line = _tls_line(points)
    if len(points) >= 4:
        res = _line_residuals(line, points)
        inliers = res <= max(2.0, 4.0 * float(np.median(res)))
        if 2 <= inliers.sum() < len(points):
            line = _tls_line(points[inliers])
    return line


def intersect_lines(l1: Line2, l2: Line2) -> np.ndarray | None:
    """Intersection point, or None when the lines are too close to parallel to meet reliably."""
    det = _cross(l1.direction, l2.direction)
    if abs(det) < math.sin(_MIN_INTERSECTION_ANGLE):
        return None
    t = _cross(l2.point - l1.point, l2.direction) / det
    return l1.point + t * l1.direction


@dataclass(frozen=True)
class FittedArc:
    """An ellipse fitted to annotated points, and the arc of it that those points cover."""

    ellipse: Ellipse
    start: float
    span: float

    def covers(self, point: np.ndarray) -> bool:
        """Whether a point lies on the annotated arc or just beyond it, where the fit is trusted."""
        angle = float(self.ellipse.angles(np.asarray(point, dtype=np.float64)[None])[0])
        offset = (angle - self.start + _ARC_EXTRAPOLATION) % (2.0 * math.pi)
        return offset <= self.span + 2.0 * _ARC_EXTRAPOLATION


def _covered_arc(ellipse: Ellipse, points: np.ndarray) -> tuple[float, float]:
    """(start angle, span) of the smallest arc containing all points: the circle minus its largest gap."""
    angles = np.sort(ellipse.angles(points))
    gaps = np.diff(np.r_[angles, angles[0] + 2.0 * math.pi])
    largest = int(np.argmax(gaps))
    return float(angles[(largest + 1) % len(angles)]), float(2.0 * math.pi - gaps[largest])


def fit_arc(points: np.ndarray, max_axis: float) -> FittedArc | None:
    """Fit the ellipse of a pitch circle to ≥5 annotated points; None when it cannot be trusted.

    A conic through a short or nearly straight arc fits the clicks and nothing else (five points
    determine one exactly), so a fit is kept only if the points span a fair arc of it and it is
    not flatter than any broadcast view of a circle. cv2.fitEllipseDirect never returns a
    hyperbola, and one trimming pass drops stray clicks.
    """
    ellipse = fit_ellipse(points, max_axis)
    if ellipse is None or min(ellipse.a, ellipse.b) < _MIN_ELLIPSE_ASPECT * max(ellipse.a, ellipse.b):
        return None
    start, span = _covered_arc(ellipse, points)
    if span < _MIN_ARC_COVERAGE:
        return None
    return FittedArc(ellipse, start, span)


def fit_ellipse(points: np.ndarray, max_axis: float) -> Ellipse | None:
    """Least-squares ellipse through ≥5 points, with one trimming pass; None if it fits badly."""
    if len(points) < 5:
        return None
    ellipse = _fit_ellipse_once(points, max_axis)
    if ellipse is None:
        return None
    res = ellipse.residuals(points)
    inliers = res <= max(2.0, 4.0 * float(np.median(res)))
    if inliers.sum() >= 5 and not inliers.all():
        ellipse = _fit_ellipse_once(points[inliers], max_axis)
        if ellipse is None:
            return None
        res = ellipse.residuals(points[inliers])
    if float(np.median(res)) > 2.0:
        return None
    return ellipse


def _fit_ellipse_once(points: np.ndarray, max_axis: float) -> Ellipse | None:
    origin = points.mean(axis=0)
    (cx, cy), (w, h), angle = cv2.fitEllipseDirect((points - origin).astype(np.float32))
    a, b = w / 2.0, h / 2.0
    if not all(map(math.isfinite, (cx, cy, a, b, angle))) or min(a, b) <= 1e-3 or max(a, b) > max_axis:
        return None
    return Ellipse(np.array([cx, cy]) + origin, a, b, math.radians(angle))


def line_ellipse_intersections(line: Line2, ellipse: Ellipse) -> tuple[np.ndarray, np.ndarray] | None:
    """Both crossings of a line with an ellipse, solved in the ellipse frame for conditioning."""
    q0 = ellipse.to_local(line.point)
    d = line.direction @ ellipse.rotation()
    ia, ib = 1.0 / ellipse.a**2, 1.0 / ellipse.b**2
    qa = d[0] ** 2 * ia + d[1] ** 2 * ib
    qb = 2.0 * (q0[0] * d[0] * ia + q0[1] * d[1] * ib)
    qc = q0[0] ** 2 * ia + q0[1] ** 2 * ib - 1.0
    disc = qb * qb - 4.0 * qa * qc
    if disc < 0.0:
        return None
    root = math.sqrt(disc)
    t1, t2 = (-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)
    return line.point + t1 * line.direction, line.point + t2 * line.direction


def tangent_points(ellipse: Ellipse, external: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the two tangents from an outside point touch the ellipse: its polar line's crossings."""
    e = ellipse.to_local(external)
    normal = np.array([e[0] / ellipse.a**2, e[1] / ellipse.b**2])
    if float(e @ normal) <= 1.0:
        return None
    q0 = normal / float(normal @ normal)
    direction = np.array([-normal[1], normal[0]]) / np.linalg.norm(normal)
    rotation = ellipse.rotation()
    polar = Line2(ellipse.to_global(q0), rotation @ direction)
    return line_ellipse_intersections(polar, ellipse)


# --------------------------------------------------------------------------------------------
# Recipes: the table's derived_from column parsed once, plus the pitch-side facts that tell
# the two roots of a line–conic or tangent construction apart in any image.
# --------------------------------------------------------------------------------------------

_PITCH = SoccerPitch()
_CLASS_BY_STRIPPED = {name.strip(): name for name in SoccerPitch.lines_classes}
_RADIUS = SoccerPitch.CENTER_CIRCLE_RADIUS
_CIRCLES = {
    name: Ellipse(np.asarray(_PITCH.point_dict[centre][:2], dtype=np.float64), _RADIUS, _RADIUS, 0.0)
    for name, centre in (
        ("Circle central", "CENTER_MARK"),
        ("Circle left", "L_PENALTY_MARK"),
        ("Circle right", "R_PENALTY_MARK"),
    )
}


def _pitch_line(name: str) -> Line2:
    start, end = (np.asarray(p, dtype=np.float64)[:2] for p in _PITCH.line_extremities[name])
    return Line2(start, (end - start) / np.linalg.norm(end - start))


@dataclass(frozen=True)
class _Recipe:
    """How one keypoint is found; which fields are set depends on the keypoint's kind."""

    lines: tuple[str, ...] = ()
    circle: str | None = None
    upper: bool | None = None
    tangent_from: int | None = None
    reference_side: float = 0.0
    """Orientation sign of (target, other root, reference) on the pitch; 0 when no reference."""
    endpoints: tuple[tuple[int, bool], ...] = ()
    """Line-line keypoints at the line's ends, each with: is the target the root nearer to it?"""


def _class_name(text: str) -> str:
    name = _CLASS_BY_STRIPPED.get(text.strip())
    if name is None:
        raise ValueError(f"keypoints57.tsv names an unknown line class {text!r}")
    return name


def _other_root(target: np.ndarray, roots: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return max(roots, key=lambda r: float(np.linalg.norm(r - target)))


def _line_conic_recipe(kp: Keypoint) -> _Recipe:
    """Parse 'LINE ∩ CIRCLE; upper|lower root' and precompute how to tell the roots apart.

    The tsv's image-y rule breaks for a camera looking along the long axis (both crossings then
    sit at the same image y), so a projective invariant is used where there is one: the
    orientation of (target, other crossing, circle centre) is the same in the image as on the
    pitch when the image reference is the ellipse's centre. That centre is the image of a point
    r²/D from the circle's centre (D: distance to the camera's vanishing ground line), about 1-2 m
    for broadcast cameras, so it sits on the circle centre's side of any chord ≥3 m from it (the
    penalty-area line). The halfway line passes through its circle's centre, so there the roots
    are ordered along the line from a touch-line keypoint instead, and by image y as a last resort.
    """
    head, _, tail = kp.derived_from.partition(";")
    line_text, circle_text = (part.strip() for part in head.split("∩"))
    line, circle = _class_name(line_text), _class_name(circle_text)
    if "upper" not in tail and "lower" not in tail:
        raise ValueError(f"keypoint {kp.index}: no upper/lower root in {kp.derived_from!r}")
    pitch_line, pitch_circle = _pitch_line(line), _CIRCLES[circle]
    roots = line_ellipse_intersections(pitch_line, pitch_circle)
    target = np.array(kp.xyz[:2])
    other = _other_root(target, roots)
    offset = abs(_cross(pitch_circle.center - pitch_line.point, pitch_line.direction))
    side = 0.0
    if offset >= _CONIC_REFERENCE_MIN_OFFSET_M:
        side = math.copysign(1.0, _orientation(target, other, pitch_circle.center))
    endpoints = tuple(
        (end, bool(np.linalg.norm(target - _XYZ[end, :2]) < np.linalg.norm(other - _XYZ[end, :2])))
        for end in (_INDEX_BY_NAME[n] for n in _PITCH.line_extremities_keys[line])
    )
    return _Recipe(
        lines=(line,), circle=circle, upper="upper" in tail, reference_side=side, endpoints=endpoints
    )


def _tangent_recipe(kp: Keypoint) -> _Recipe:
    """Parse 'CIRCLE (...) tangent ... from kpN'; the root is told apart by orientation.

    The two tangent points and the outside point form a triangle whose orientation a camera above
    the ground preserves, so the tsv's 'root idx' (an image-order convention) is not needed.
    """
    match = re.match(r"(Circle \w+) .*from kp(\d+)", kp.derived_from)
    if match is None:
        raise ValueError(f"keypoint {kp.index}: cannot parse {kp.derived_from!r}")
    circle, source = _class_name(match.group(1)), int(match.group(2))
    external = _XYZ[source, :2]
    target = np.array(kp.xyz[:2])
    other = _other_root(target, tangent_points(_CIRCLES[circle], external))
    side = math.copysign(1.0, _orientation(target, other, external))
    return _Recipe(circle=circle, tangent_from=source, reference_side=side)


def _recipe(kp: Keypoint) -> _Recipe:
    if kp.kind == "line-line":
        return _Recipe(lines=tuple(_class_name(t) for t in kp.derived_from.split("∩")))
    if kp.kind == "line-conic":
        return _line_conic_recipe(kp)
    if kp.kind == "conic-tangent":
        return _tangent_recipe(kp)
    if kp.kind == "homography":
        return _Recipe()
    raise ValueError(f"keypoint {kp.index}: unknown kind {kp.kind!r}")


_RECIPES: tuple[_Recipe, ...] = tuple(_recipe(kp) for kp in KEYPOINTS)
_ON_GROUND = np.abs(_XYZ[:, 2]) < 1e-9


def _symmetric_pairs() -> np.ndarray:
    """Pairs that share pitch x (and height) at opposite y: lines across the pitch's width.

    They are what a camera looking along the long axis sees as horizontal.
    """
    pairs = []
    for i in range(NUM_KEYPOINTS):
        for j in range(i + 1, NUM_KEYPOINTS):
            xi, yi, zi = _XYZ[i]
            xj, yj, zj = _XYZ[j]
            if abs(xi - xj) < 1e-6 and abs(zi - zj) < 1e-6 and abs(yi + yj) < 1e-6 and abs(yi) > 1e-6:
                pairs.append((i, j))
    return np.array(pairs, dtype=np.int64)


SYMMETRIC_PAIRS: np.ndarray = _symmetric_pairs()


# --------------------------------------------------------------------------------------------
# Derivation
# --------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _annotation_points(annotation: dict, width: int, height: int) -> dict[str, np.ndarray]:
    """Pixel points per usable line class; malformed entries are dropped, not fatal."""
    scale = np.array([width - 1, height - 1], dtype=np.float64)
    lines: dict[str, np.ndarray] = {}
    for name, points in annotation.items():
        if name in _IGNORED_CLASSES or not isinstance(points, list):
            continue
        xy = [
            (float(p["x"]), float(p["y"]))
            for p in points
            if isinstance(p, dict) and _is_number(p.get("x")) and _is_number(p.get("y"))
        ]
        if len(xy) >= 2:
            lines[name] = np.array(xy, dtype=np.float64) * scale
    return lines


def _line_line(recipe: _Recipe, lines: dict[str, np.ndarray]) -> np.ndarray | None:
    """Intersect two fitted lines, refitting each near the first estimate (lens curvature)."""
    first, second = recipe.lines
    if first not in lines or second not in lines:
        return None
    l1, l2 = fit_line(lines[first]), fit_line(lines[second])
    if l1 is None or l2 is None:
        return None
    point = intersect_lines(l1, l2)
    if point is None:
        return None
    l1, l2 = fit_line(lines[first], near=point), fit_line(lines[second], near=point)
    if l1 is None or l2 is None:
        return None
    return intersect_lines(l1, l2)


def _line_conic(
    recipe: _Recipe, lines: dict[str, np.ndarray], arcs: dict[str, FittedArc], xy: np.ndarray
) -> np.ndarray | None:
    """Cross a fitted line with a fitted ellipse and pick the root that is this keypoint."""
    arc = arcs.get(recipe.circle)
    if arc is None or recipe.lines[0] not in lines:
        return None
    line = fit_line(lines[recipe.lines[0]], near=arc.ellipse.center)
    roots = None if line is None else line_ellipse_intersections(line, arc.ellipse)
    if roots is None:
        return None
    first, second = roots
    if recipe.reference_side != 0.0:
        side = _orientation(first, second, arc.ellipse.center)
        point = first if math.copysign(1.0, side) == recipe.reference_side else second
    else:
        point = _order_along_line(recipe, first, second, xy)
    return point if arc.covers(point) else None


def _order_along_line(recipe: _Recipe, first: np.ndarray, second: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Pick a root by its order from a known end of the line (a projective invariant), else by image y."""
    for end, target_nearer in recipe.endpoints:
        if np.isfinite(xy[end]).all():
            first_nearer = np.linalg.norm(first - xy[end]) < np.linalg.norm(second - xy[end])
            return first if first_nearer == target_nearer else second
    upper_first = first[1] < second[1]
    return first if upper_first == recipe.upper else second


def _tangent(recipe: _Recipe, arcs: dict[str, FittedArc], xy: np.ndarray) -> np.ndarray | None:
    """Tangent point from another keypoint's image position, picked by triangle orientation."""
    arc = arcs.get(recipe.circle)
    external = xy[recipe.tangent_from]
    if arc is None or not np.isfinite(external).all():
        return None
    roots = tangent_points(arc.ellipse, external)
    if roots is None:
        return None
    first, second = roots
    side = _orientation(first, second, external)
    point = first if math.copysign(1.0, side) == recipe.reference_side else second
    return point if arc.covers(point) else None


def _in_general_position(world_xy: np.ndarray) -> bool:
    """Whether some 4 of the points have no 3 on one line, as a homography needs.

    That fails exactly when all but at most one point lie near a single pitch line (e.g. the
    halfway line's points plus one tangent point), which leaves the homography degenerate.
    """
    n = len(world_xy)
    if n < 4:
        return False
    i, j = np.triu_indices(n, k=1)
    direction = world_xy[j] - world_xy[i]
    length = np.linalg.norm(direction, axis=1)
    keep = length > 1e-9
    normal = np.c_[-direction[keep, 1], direction[keep, 0]] / length[keep, None]
    offsets = np.einsum("pk,pk->p", normal, world_xy[i[keep]])
    near = np.abs(world_xy @ normal.T - offsets) < _MIN_WORLD_SPREAD_M
    return bool((near.sum(axis=0) < n - 1).all())


def fit_ground_homography(world_xy: np.ndarray, image_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC homography pitch plane → image and its inlier mask; None if it cannot be trusted.

    The homography is signed so that points in front of the camera have w > 0. It is rejected when
    undetermined (points not in general position) or when it mirrors the plane, which a camera
    above the ground cannot do: then some labels are wrong.
    """
    if not _in_general_position(world_xy):
        return None
    homography, mask = cv2.findHomography(world_xy, image_xy, cv2.RANSAC, _RANSAC_THRESHOLD_PX)
    if homography is None or mask is None:
        return None
    inliers = mask.ravel().astype(bool)
    if not _in_general_position(world_xy[inliers]):
        return None
    w = np.c_[world_xy[inliers], np.ones(int(inliers.sum()))] @ homography[2]
    if (w < 0).all():
        homography = -homography
    elif not (w > 0).all():
        return None
    if np.linalg.det(homography) <= 0.0:
        return None
    return homography, inliers


_GROUND_LINES = {
    name: np.cross(np.r_[np.asarray(a, float)[:2], 1.0], np.r_[np.asarray(b, float)[:2], 1.0])
    for name, (a, b) in _PITCH.line_extremities.items()
    if "Goal" not in name and "Circle" not in name
}
"""Pitch-plane lines in homogeneous form, for refining a homography with every click on them."""
_CIRCLE_CONICS = {
    name: np.array(
        [
            [1.0, 0.0, -c.center[0]],
            [0.0, 1.0, -c.center[1]],
            [-c.center[0], -c.center[1], c.center @ c.center - c.a**2],
        ]
    )
    for name, c in _CIRCLES.items()
}
_WORLD_SCALE = np.diag([50.0, 50.0, 1.0])
"""Pitch metres scaled to about ±1, so that all eight homography parameters have similar effect."""


def _per_click(lines: dict[str, np.ndarray], models: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each click on a modelled class, homogeneous, beside its class's pitch line or conic."""
    names = [name for name in lines if name in models]
    model_shape = next(iter(models.values())).shape
    if not names:
        return np.zeros((0, *model_shape)), np.zeros((0, 3))
    world = np.concatenate([np.broadcast_to(models[n], (len(lines[n]), *model_shape)) for n in names])
    clicks = np.concatenate([np.c_[lines[n], np.ones(len(lines[n]))] for n in names])
    return world, clicks


def refine_homography(
    homography: np.ndarray, world_xy: np.ndarray, image_xy: np.ndarray, lines: dict[str, np.ndarray]
) -> np.ndarray:
    """Polish a point homography with every click on a ground line or circle (robust least squares).

    Points found by intersection cluster where lines cross, often in one corner of the image, and a
    homography from them alone extrapolates badly to the rest of the pitch (tens of pixels at the
    centre circle in a penalty-area view). The clicks cover every visible line, so each one,
    as a distance to its projected pitch line or circle, pins the homography down where points
    are missing. Returns the input when the refinement does not converge to something sane.
    """
    base = homography @ _WORLD_SCALE
    unscale = np.linalg.inv(_WORLD_SCALE)
    world_h = np.c_[world_xy, np.ones(len(world_xy))] @ unscale.T
    line_world, line_px = _per_click(lines, _GROUND_LINES)
    conic_world, conic_px = _per_click(lines, _CIRCLE_CONICS)
    if len(line_px) == 0 and len(conic_px) == 0:
        return homography

    def current(params: np.ndarray) -> np.ndarray:
        step = np.eye(3)
        step.ravel()[:8] += params
        return base @ step @ unscale

    def residuals(params: np.ndarray) -> np.ndarray:
        h = current(params)
        projected = world_h @ (h @ _WORLD_SCALE).T
        inverse = np.linalg.inv(h)
        image_lines = line_world @ inverse
        line_res = np.einsum("ij,ij->i", image_lines, line_px) / np.hypot(*image_lines[:, :2].T)
        back = conic_px @ inverse.T
        qp = np.einsum("ijk,ik->ij", conic_world, back)
        value = np.einsum("ij,ij->i", qp, back)
        grad = 2.0 * np.linalg.norm((qp @ inverse)[:, :2], axis=1)
        point_res = (projected[:, :2] / projected[:, 2:3] - image_xy).ravel()
        return np.concatenate([point_res, line_res, value / (grad + 1e-12)])

    result = least_squares(
        residuals, np.zeros(8), loss="soft_l1", f_scale=1.5, x_scale="jac", ftol=1e-6, xtol=1e-6, max_nfev=50
    )
    refined = current(result.x)
    w = np.c_[world_xy, np.ones(len(world_xy))] @ refined[2]
    if not result.success or not (w > 0).all() or np.linalg.det(refined) <= 0.0:
        return homography
    return refined


def _apply_homography(homography: np.ndarray, world_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image points and their w; w ≤ 0 means the pitch point is behind the camera."""
    h = np.c_[world_xy, np.ones(len(world_xy))] @ homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3], h[:, 2]


def derive_keypoints_with_sources(
    annotation: dict, width: int, height: int, *, margin: float = VISIBILITY_MARGIN_PX, resolve_ambiguity: bool = True
) -> tuple[np.ndarray, list[str]]:
    """derive_keypoints, plus which method placed each point; the split shows where errors come from."""
    lines = _annotation_points(annotation, width, height)
    max_axis = 20.0 * max(width, height)
    arcs = {}
    for name in _CIRCLES:
        arc = fit_arc(lines[name], max_axis) if name in lines else None
        if arc is not None:
            arcs[name] = arc

    xy = np.full((NUM_KEYPOINTS, 2), np.nan)
    sources = [""] * NUM_KEYPOINTS
    # In this order: line-conic roots are ordered by line-line points, tangents start from them.
    for kind, place in (
        ("line-line", lambda r: _line_line(r, lines)),
        ("line-conic", lambda r: _line_conic(r, lines, arcs, xy)),
        ("conic-tangent", lambda r: _tangent(r, arcs, xy)),
    ):
        for kp, recipe in zip(KEYPOINTS, _RECIPES):
            if kp.kind == kind:
                point = place(recipe)
                if point is not None and np.isfinite(point).all():
                    xy[kp.index], sources[kp.index] = point, kind

    state = np.where(np.isfinite(xy).all(axis=1), VISIBLE, UNKNOWN)
    found = np.flatnonzero(_ON_GROUND & (state == VISIBLE))
    fit = fit_ground_homography(_XYZ[found, :2], xy[found]) if len(found) >= 4 else None
    if fit is not None:
        homography, inliers = fit
        homography = refine_homography(homography, _XYZ[found[inliers], :2], xy[found[inliers]], lines)
        projected, w = _apply_homography(homography, _XYZ[:, :2])
        # Conic-derived points that disagree with the consensus came from a poor ellipse: replace them.
        conic_outliers = [i for i, ok in zip(found, inliers) if not ok and sources[i] != "line-line"]
        fill = _ON_GROUND & (state == UNKNOWN)
        fill[conic_outliers] = inliers.sum() >= 5
        xy[fill] = projected[fill]
        state[fill] = VISIBLE
        for i in np.flatnonzero(fill):
            sources[i] = "homography"
        behind = _ON_GROUND & (w <= 0.0)
        xy[behind] = np.nan
        state[behind] = INVISIBLE

    x, y = xy[:, 0], xy[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= -margin) & (x <= width - 1 + margin) & (y >= -margin) & (y <= height - 1 + margin)
    state[(state == VISIBLE) & ~inside] = INVISIBLE

    kps = np.c_[xy, state].astype(np.float32)
    if resolve_ambiguity and needs_mirroring(kps, annotation):
        kps = kps[MIRROR_INDEX]
        sources = [sources[i] for i in MIRROR_INDEX]
    return kps, sources


def derive_keypoints(
    annotation: dict, width: int, height: int, *, margin: float = VISIBILITY_MARGIN_PX, resolve_ambiguity: bool = True
) -> np.ndarray:
    """The 57 keypoints of one SoccerNet annotation, as float32 (57, 3): x, y in pixels, state.

    The annotation maps line classes to points normalised by (width − 1, height − 1). State is
    1 visible, 0 invisible (placed, but outside the image grown by ``margin`` px, or behind the
    camera, where x, y are NaN), -1 unknown (not placeable: x, y NaN). Unknown points are masked
    out of the loss; invisible ones are taught as empty heatmaps, so the two must not be confused.
    """
    kps, _ = derive_keypoints_with_sources(
        annotation, width, height, margin=margin, resolve_ambiguity=resolve_ambiguity
    )
    return kps


# --------------------------------------------------------------------------------------------
# Left/right ambiguity, flips, output
# --------------------------------------------------------------------------------------------


def _looks_along_long_axis(kps: np.ndarray) -> bool:
    """True when at least half the visible cross-pitch pairs lie nearly horizontal in the image.

    Then the camera looks along the pitch's length, and whether the annotator called the visible
    goal 'left' or 'right' is arbitrary. A pair that collapsed to one point has no direction and
    is not counted.
    """
    visible = kps[:, 2] == VISIBLE
    pairs = [
        (i, j)
        for i, j in SYMMETRIC_PAIRS
        if visible[i] and visible[j] and np.hypot(*(kps[i, :2] - kps[j, :2])) >= _MIN_PAIR_LENGTH_PX
    ]
    if not pairs:
        return False
    horizontal = 0
    for i, j in pairs:
        dx, dy = abs(float(kps[i, 0] - kps[j, 0])), abs(float(kps[i, 1] - kps[j, 1]))
        horizontal += dy < 1.0 or dx > 10.0 * dy
    return 2 * horizontal >= len(pairs)


def _side_of_class(name: str) -> str | None:
    """The pitch half a class names: its first 'left'/'right' ('Goal left post right' is left)."""
    match = re.search(r"\b(left|right)\b", name)
    return match.group(1) if match else None


def _near_side_is_right(kps: np.ndarray, annotation: dict) -> bool:
    """Whether the goal area nearest the camera (lowest in the image) is labelled 'right'."""
    visible = kps[:, 2] == VISIBLE
    left, right = visible & (_XYZ[:, 0] < 0), visible & (_XYZ[:, 0] > 0)
    if left.any() and right.any():
        return float(np.median(kps[right, 1])) > float(np.median(kps[left, 1]))
    sides = [_side_of_class(name) for name in annotation if name not in _IGNORED_CLASSES]
    return sides.count("right") > sides.count("left")


def needs_mirroring(kps: np.ndarray, annotation: dict) -> bool:
    """Whether resolve_left_right would relabel these keypoints."""
    return _looks_along_long_axis(kps) and _near_side_is_right(kps, annotation)


def resolve_left_right(kps: np.ndarray, annotation: dict) -> np.ndarray:
    """Relabel a long-axis view with the point reflection so the visible goal area is 'left'.

    Without this, the same picture would be taught as 'left' in one frame and 'right' in
    another; with it the labels of such views are a function of the image.
    """
    return kps[MIRROR_INDEX] if needs_mirroring(kps, annotation) else kps.copy()


def flip_keypoints(kps: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored image: x → (width − 1) − x, index i → FLIP_INDEX[i]."""
    flipped = kps[FLIP_INDEX].copy()
    flipped[:, 0] = (width - 1) - flipped[:, 0]
    return flipped


def keypoints_to_json(kps: np.ndarray) -> list[list[float] | None]:
    """[x, y] per visible keypoint, None for invisible and unknown ones: what is in the picture."""
    return [
        [round(float(x), 3), round(float(y), 3)] if state == VISIBLE else None for x, y, state in kps
    ]
