"""Plane geometry for the derivation: lines as point + unit direction, ellipses as centre,
semi-axes and angle, and their robust fits to annotated clicks.

The same code serves image ellipses and the pitch's circles, so root choices can be made by
comparing an image configuration with its pitch counterpart. Pure numpy and OpenCV on arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_LOCAL_FIT_MIN_POINTS = 6
"""A line with this many points is fitted only near where it is used: lens curvature bends long lines."""
_MIN_INTERSECTION_ANGLE = math.radians(2.0)
"""Below this angle two fitted lines meet too far from their data for the point to be trusted."""
_MIN_ELLIPSE_ASPECT = 0.08
"""A pitch circle seen from a broadcast camera (≥ ~6° above it) is never flatter than this."""
_MIN_ARC_COVERAGE = math.radians(40.0)
"""A conic fitted to a shorter arc is too unconstrained to extrapolate from."""
_ARC_EXTRAPOLATION = math.radians(15.0)
"""How far beyond the annotated arc (in ellipse angle) a crossing or tangent point is trusted."""


@dataclass(frozen=True)
class Line2:
    """An infinite 2D line; point + unit direction avoids the scale problems of (a, b, c)."""

    point: np.ndarray
    direction: np.ndarray
    clicks: int = 0
    """For a fitted line: how many clicks it went through (then point is their centroid)..."""
    spread: float = 0.0
    """...and the sum of their squared distances from it along the line: together its uncertainty."""
    misfit: float = 0.0
    """...and the sum of their squared distances to the line: how far this annotator's clicks scatter."""

    def offset_variance(self, at: np.ndarray) -> float:
        """Variance of the fitted line's perpendicular position at a point, per unit click variance.

        The centroid's error, plus the direction's error growing linearly away from the centroid.
        A line that was not fitted has none.
        """
        if self.clicks == 0:
            return 0.0
        along = float((np.asarray(at) - self.point) @ self.direction)
        return 1.0 / self.clicks + along * along / max(self.spread, 1e-12)


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

    def matrix(self) -> np.ndarray:
        """The symmetric 3×3 conic C with pᵀ C p = 0 for the curve's homogeneous points p."""
        to_global = np.eye(3)
        to_global[:2, :2], to_global[:2, 2] = self.rotation(), self.center
        to_local = np.linalg.inv(to_global)
        return to_local.T @ np.diag([1.0 / self.a**2, 1.0 / self.b**2, -1.0]) @ to_local

    def angles(self, points: np.ndarray) -> np.ndarray:
        """Parametric angle of each point, the same along the curve whatever the eccentricity."""
        q = self.to_local(points)
        return np.arctan2(q[:, 1] / self.b, q[:, 0] / self.a)

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """Approximate distance of each point to the curve (radial, exact for circles)."""
        q = self.to_local(points)
        r = np.hypot(q[:, 0] / self.a, q[:, 1] / self.b)
        return np.linalg.norm(q, axis=1) * np.abs(1.0 - 1.0 / np.maximum(r, 1e-12))


def cross(u: np.ndarray, v: np.ndarray) -> float:
    """The z of the 3D cross product: its sign says on which side of u the vector v lies."""
    return float(u[0] * v[1] - u[1] * v[0])


def orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Signed area of triangle abc; its sign survives any projective map that keeps the plane's side."""
    return cross(b - a, c - a)


def _median(values: np.ndarray) -> float:
    """np.median of a short 1-D array, without its generic machinery (which cost more than a fit)."""
    ordered = np.sort(values)
    n = len(ordered)
    return 0.5 * float(ordered[(n - 1) // 2] + ordered[n // 2])


def _tls_line(points: np.ndarray) -> Line2:
    """Total least squares line: both coordinates are noisy clicks, so no axis is special."""
    centre = points.sum(axis=0) / len(points)
    d = points - centre
    sxx, syy, sxy = float(d[:, 0] @ d[:, 0]), float(d[:, 1] @ d[:, 1]), float(d[:, 0] @ d[:, 1])
    # The scatter matrix's major axis in closed form: an SVD per fit cost more than the rest of it.
    angle = 0.5 * math.atan2(2.0 * sxy, sxx - syy)
    direction = np.array([math.cos(angle), math.sin(angle)])
    along, across = d @ direction, d @ np.array([-direction[1], direction[0]])
    return Line2(centre, direction, len(points), float(along @ along), float(across @ across))


def _line_residuals(line: Line2, points: np.ndarray) -> np.ndarray:
    return np.abs((points - line.point) @ np.array([-line.direction[1], line.direction[0]]))


def fits_locally(points: np.ndarray) -> bool:
    """Whether fit_line fits these points only near its anchor; with fewer, the anchor is ignored."""
    return len(points) >= _LOCAL_FIT_MIN_POINTS


def fit_line(points: np.ndarray, near: np.ndarray | None = None) -> Line2 | None:
    """Fit a line robustly; with many points and an anchor, only near the anchor.

    Annotators click more points on lines that the lens bends, so a long, many-point line is
    fitted from its points nearest to where it is used (an intersection) to follow the curve
    locally. One trimming pass drops a stray click without needing RANSAC on 2..10 points.
    """
    if len(points) < 2:
        return None
    if near is not None and fits_locally(points):
        keep = max(4, math.ceil(len(points) / 2))
        order = np.argsort(np.linalg.norm(points - near, axis=1))
        points = points[order[:keep]]
    if np.ptp(points, axis=0).max() < 1e-6:
        return None
    line = _tls_line(points)
    if len(points) >= 4:
        res = _line_residuals(line, points)
        inliers = res <= max(2.0, 4.0 * _median(res))
        if 2 <= inliers.sum() < len(points):
            line = _tls_line(points[inliers])
    return line


def intersection_spread(l1: Line2, l2: Line2, point: np.ndarray, click_noise: float) -> float:
    """RMS error (px) of two fitted lines' intersection, from each line's offset error at the point.

    Two lines from few clicks close together, crossing at a shallow angle, meet far less surely
    than their clicks are placed: the offsets' errors are divided by the angle's sine (the trace of
    the crossing's covariance, N⁻¹ diag(v₁, v₂) N⁻ᵀ with unit normals N, is (v₁ + v₂) / sin²).
    """
    sine = abs(cross(l1.direction, l2.direction))
    return click_noise * math.sqrt(l1.offset_variance(point) + l2.offset_variance(point)) / max(sine, 1e-12)


def intersect_lines(l1: Line2, l2: Line2) -> np.ndarray | None:
    """Intersection point, or None when the lines are too close to parallel to meet reliably."""
    det = cross(l1.direction, l2.direction)
    if abs(det) < math.sin(_MIN_INTERSECTION_ANGLE):
        return None
    t = cross(l2.point - l1.point, l2.direction) / det
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
    inliers = res <= max(2.0, 4.0 * _median(res))
    if inliers.sum() >= 5 and not inliers.all():
        ellipse = _fit_ellipse_once(points[inliers], max_axis)
        if ellipse is None:
            return None
        res = ellipse.residuals(points[inliers])
    if _median(res) > 2.0:
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
