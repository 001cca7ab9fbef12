"""The ground-plane homography of a frame: fitted to the points found, refined with every click.

Points the line and conic constructions cannot place (the homography kinds, and circle points
whose ellipse failed) are projected through it; it also says which pitch points are behind the
camera.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from trainer.data.keypoints.geometry import Ellipse, Line2
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
_JACOBIAN_STEP = 1.49e-8
"""Relative forward-difference step: the square root of float64's epsilon, as SciPy's own."""
_LOSS_SCALE_PX = 1.5
"""Soft-L1 loss scale: residuals beyond about this many pixels count linearly (a mislabelled click)."""
_MAX_ITERATIONS = 50
_FTOL = 1e-6
"""Converged when an accepted step lowers the cost by less than this fraction of it."""
_XTOL = 1e-6
"""Converged when a step is shorter than this fraction of the parameters."""
_GTOL = 1e-8
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


def _soft_l1(residuals: np.ndarray) -> tuple[float, np.ndarray]:
    """Robust cost Σ 2f²(√(1 + (r/f)²) − 1) / 2 and each residual's IRLS weight, the loss's slope.

    At a minimum of the weighted least squares with these weights the robust cost's gradient is
    zero too, so reweighting every iteration converges to the robust fit.
    """
    root = np.sqrt(1.0 + (residuals / _LOSS_SCALE_PX) ** 2)
    return float(_LOSS_SCALE_PX**2 * (root - 1.0).sum()), 1.0 / root


def _levenberg_marquardt(batch_residuals: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """Minimise the soft-L1 cost of batch_residuals over 8 parameters from zero; None if it does not converge.

    Our own small LM instead of scipy.optimize.least_squares: with 8 parameters and a few hundred
    residuals the solver's per-iteration bookkeeping (SVDs, trust-region solves, wrappers) cost
    more than the model itself. Each candidate step is evaluated together with its forward
    difference Jacobian in one batched call (9 parameter vectors), so an iteration is one call
    whether the step is accepted or not. Damping is Marquardt's (scaled by the normal matrix's
    diagonal), which makes the step invariant to the parameters' scales as SciPy's x_scale="jac".
    """

    def evaluate(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        steps = _JACOBIAN_STEP * np.maximum(1.0, np.abs(params))
        values = batch_residuals(np.vstack([params, params + np.diag(steps)]))
        return values[0], ((values[1:] - values[0]) / steps[:, None]).T

    params = np.zeros(8)
    res, jac = evaluate(params)
    cost, weights = _soft_l1(res)
    damping = 1e-3
    for _ in range(_MAX_ITERATIONS):
        gradient = jac.T @ (weights * res)
        if np.abs(gradient).max() < _GTOL:
            return params
        normal = jac.T @ (weights[:, None] * jac)
        try:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), -gradient)
        except np.linalg.LinAlgError:
            return None
        if np.linalg.norm(step) < _XTOL * (_XTOL + np.linalg.norm(params)):
            return params
        candidate = params + step
        cand_res, cand_jac = evaluate(candidate)
        cand_cost, cand_weights = _soft_l1(cand_res)
        if not cand_cost < cost:
            damping *= 4.0
            continue
        converged = cost - cand_cost < _FTOL * cost
        params, res, jac, cost, weights = candidate, cand_res, cand_jac, cand_cost, cand_weights
        if converged:
            return params
        damping = max(damping / 4.0, 1e-9)
    return None


def _click_model(
    homography: np.ndarray, world_xy: np.ndarray, image_xy: np.ndarray, lines: dict[str, np.ndarray]
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]] | None:
    """(homographies, residuals) of (B, 8) updates to a homography; None when no click is modelled.

    Residuals, in pixels: each point's reprojection error, then each click's distance to its
    projected pitch line, then to its projected circle.
    """
    base = homography @ _WORLD_SCALE
    unscale = np.linalg.inv(_WORLD_SCALE)
    world_h = np.c_[world_xy, np.ones(len(world_xy))] @ unscale.T
    line_world, line_px = _per_click(lines, _GROUND_LINES)
    conic_world, conic_px = _per_click(lines, _CIRCLE_CONICS)
    if len(line_px) == 0 and len(conic_px) == 0:
        return None

    def current(params: np.ndarray) -> np.ndarray:
        """Homographies for a (B, 8) batch of parameter vectors: (B, 3, 3)."""
        steps = np.tile(np.eye(3), (len(params), 1, 1))
        steps.reshape(len(params), 9)[:, :8] += params
        return base @ steps @ unscale

    def batch_residuals(params: np.ndarray) -> np.ndarray:
        """Residuals of every parameter vector in a batch at once: (B, residuals)."""
        h = current(params)
        projected = world_h @ (h @ _WORLD_SCALE).transpose(0, 2, 1)
        inverse = np.linalg.inv(h)
        image_lines = line_world @ inverse
        line_res = np.einsum("bij,ij->bi", image_lines, line_px) / np.hypot(image_lines[..., 0], image_lines[..., 1])
        back = conic_px @ inverse.transpose(0, 2, 1)
        qp = np.einsum("ijk,bik->bij", conic_world, back)
        value = np.einsum("bij,bij->bi", qp, back)
        grad = 2.0 * np.linalg.norm((qp @ inverse)[..., :2], axis=-1)
        point_res = (projected[..., :2] / projected[..., 2:3] - image_xy).reshape(len(params), -1)
        return np.concatenate([point_res, line_res, value / (grad + 1e-12)], axis=1)

    return current, batch_residuals


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
    model = _click_model(homography, world_xy, image_xy, lines)
    if model is None:
        return homography
    current, batch_residuals = model
    params = _levenberg_marquardt(batch_residuals)
    if params is None:
        return homography
    refined = current(params[None])[0]
    w = np.c_[world_xy, np.ones(len(world_xy))] @ refined[2]
    if not (w > 0).all() or np.linalg.det(refined) <= 0.0:
        return homography
    return refined


_POLE_FIT_MIN_SINGULAR = 1e-3
"""A pole correspondence set whose DLT has a second-smallest singular value (relative) below this
is too near degenerate (e.g. all poles on one pitch line) to start a refinement from."""
_POLE_FIT_MAX_MEDIAN_PX = 1.5
"""A homography that clicks, after refinement, miss by more than this (median) does not explain them."""


def _dlt(world: np.ndarray, image: np.ndarray) -> np.ndarray | None:
    """Homography from homogeneous correspondences (points at infinity allowed); None if degenerate."""
    image_scale = np.array([[1e-3, 0.0, 0.0], [0.0, 1e-3, 0.0], [0.0, 0.0, 1.0]])
    x_world = world @ np.linalg.inv(_WORLD_SCALE).T
    x_image = image @ image_scale.T
    x_world /= np.linalg.norm(x_world, axis=1, keepdims=True)
    x_image /= np.linalg.norm(x_image, axis=1, keepdims=True)
    zeros = np.zeros_like(x_world)
    u, v, w = (x_image[:, k : k + 1] for k in range(3))
    rows = np.vstack([
        np.hstack([zeros, -w * x_world, v * x_world]),
        np.hstack([w * x_world, zeros, -u * x_world]),
    ])
    _, singular, vt = np.linalg.svd(rows)
    if len(singular) < 8 or singular[7] < _POLE_FIT_MIN_SINGULAR * singular[0]:
        return None
    return np.linalg.inv(image_scale) @ vt[-1].reshape(3, 3) @ np.linalg.inv(_WORLD_SCALE)


def fit_homography_with_poles(
    world_xy: np.ndarray,
    image_xy: np.ndarray,
    lines: dict[str, np.ndarray],
    line_fit: Callable[[str], Line2 | None],
    ellipses: dict[str, Ellipse],
) -> np.ndarray | None:
    """A homography from too few points for RANSAC, helped by a circle's ellipse; None if unsupported.

    A view of the centre circle with the halfway line and a penalty-area line has fewer than four
    points in general position, yet its clicks fix the homography: pole and polar are projective,
    so the pole of each annotated ground line with respect to a circle (a pitch point, at infinity
    for a line through the centre) images to the pole of the fitted image line with respect to the
    fitted ellipse. Those poles join the points found in a DLT, which every click then refines;
    the result is kept only if the clicks agree with it, so no point is placed that the
    annotation does not support. line_fit gives a class's fitted image line; ellipses are the
    fitted image circles by class.
    """
    world = [np.c_[world_xy, np.ones(len(world_xy))]]
    image = [np.c_[image_xy, np.ones(len(image_xy))]]
    image_lines = {}
    for name in lines:
        line = line_fit(name) if name in _GROUND_LINES else None
        if line is not None:
            image_lines[name] = np.cross(np.r_[line.point, 1.0], np.r_[line.point + line.direction, 1.0])
    for circle, ellipse in ellipses.items():
        world_inverse, image_inverse = np.linalg.inv(_CIRCLE_CONICS[circle]), np.linalg.inv(ellipse.matrix())
        for name, image_line in image_lines.items():
            world.append((world_inverse @ _GROUND_LINES[name])[None])
            image.append((image_inverse @ image_line)[None])
    world_h, image_h = np.concatenate(world), np.concatenate(image)
    if len(world_h) < 4:
        return None
    homography = _dlt(world_h, image_h)
    if homography is None:
        return None
    centres = np.array([[*PITCH_CIRCLES[c].center, 1.0] for c in ellipses])
    if (centres @ homography[2] < 0).all():
        homography = -homography
    w = np.r_[centres @ homography[2], np.c_[world_xy, np.ones(len(world_xy))] @ homography[2]]
    if not (w > 0).all() or np.linalg.det(homography) <= 0.0:
        return None
    refined = refine_homography(homography, world_xy, image_xy, lines)
    model = _click_model(refined, world_xy, image_xy, lines)
    if refined is homography or model is None:
        return None
    residuals = np.abs(model[1](np.zeros((1, 8)))[0])
    return refined if float(np.median(residuals)) <= _POLE_FIT_MAX_MEDIAN_PX else None


def apply_homography(homography: np.ndarray, world_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image points and their w; w ≤ 0 means the pitch point is behind the camera."""
    h = np.c_[world_xy, np.ones(len(world_xy))] @ homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3], h[:, 2]
