"""BASELINE, not product code: trainer/data/keypoints/homography.py frozen as of "kp57-derive-1", for
bench/keypoints.py to compare the current derivation with in the same run.

The ground-plane homography of a frame: fitted to the points found, refined with every click.

Points the line and conic constructions cannot place (the homography kinds, and circle points
whose ellipse failed) are projected through it; it also says which pitch points are behind the
camera.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.optimize import least_squares

from trainer.data.keypoints.recipes import PITCH, PITCH_CIRCLES

_RANSAC_THRESHOLD_PX = 3.0
_MIN_WORLD_SPREAD_M = 1.0
"""Ground points closer than this to one line leave a homography undetermined across it."""


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
    for name, (a, b) in PITCH.line_extremities.items()
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
    for name, c in PITCH_CIRCLES.items()
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


def apply_homography(homography: np.ndarray, world_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image points and their w; w ≤ 0 means the pitch point is behind the camera."""
    h = np.c_[world_xy, np.ones(len(world_xy))] @ homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3], h[:, 2]
