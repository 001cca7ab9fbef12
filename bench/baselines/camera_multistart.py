"""The camera solver as it was before issue 14: the reference ``bench/calibrate.py`` times ours against.

Not product code: nothing in ``trainer`` imports it. It is kept verbatim (this paragraph aside) so
the benchmark compares speed and challenge score with the old multi-start solver in the same
process. Its original description follows.

A SoccerNet camera from predicted pitch keypoints.

The challenge scores cameras, the model predicts points, so this module is the bridge. It does
not use SoccerNet 0.2.0's ``Camera.from_homography``: that divides by the column norms where it
should multiply when it normalises the rotation columns, and its intrinsics solver hard-codes a
9/16 aspect. Instead the camera model is the one the annotations imply (square pixels, zero skew,
principal point at the image centre, no distortion), so only the focal length and the pose are
free, and the focal length is found from several independent starts:

- the ground-plane homography, through the two constraints a pure focal length must satisfy;
- ``cv2.calibrateCamera`` with every plane holding at least six points (the ground, each goal
  plane) as a view, principal point and aspect fixed, no distortion;
- a coarse sweep of focal lengths scored by PnP, the safety net when both above are degenerate
  (a vanishing point near the image centre makes the homography constraints vanish).

Each start gets a pose from PnP (both planar solutions where all points lie on the ground), then
one joint Levenberg-Marquardt refinement of focal length and pose over all matched points with a
robust loss, so one bad point bends the camera little and is then dropped as an outlier. Nothing
in this depends on which half of the pitch is in view, so a camera panned right is solved like
one panned left. Implausible cameras (focal length, height, distance, points behind the camera,
poor fit) are rejected: no camera is scored as a missed frame, a wrong one as a bad frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.keypoints.table import NUM_KEYPOINTS, XYZ

_GOAL_LINE_X = 52.5
MIN_POINTS = 4
"""Fewest usable keypoints a camera is estimated from (``predict`` names it when a frame has fewer)."""
_MIN_PLANE_VIEW_POINTS = 6
_MIN_WORLD_SPREAD_M = 1.0
"""Points closer than this to one line in 3D leave the camera's rotation about that line free."""
_MIN_IMAGE_SPREAD_PX = 2.0
_MAX_COORDINATE_PX = 1e5
"""A keypoint a hundred image widths off is not a prediction but a numerical accident."""
_LOG_FOCAL_RANGE = (0.0, 25.0)
"""Bounds on log focal length inside the refinement, wide but finite so a diverging step cannot overflow."""
_RANSAC_ITERATIONS = 300
"""Enough to draw an all-inlier sample of four with near certainty at the 50% inliers we accept at least."""
_SWEEP_STEPS = 24
_SWEEP_KEEP = 2
_ROBUST_SCALE_PX = 2.0
"""Residuals beyond this grow only linearly in the refinement (soft L1), so outliers pull less."""
_LM_MAX_ITERATIONS = 50
_REFINED_STARTS = 4
"""Only the starts that PnP already fits best are refined; the right focal length is among them."""


@dataclass(frozen=True)
class CameraLimits:
    """What a broadcast camera can be; anything outside is a failed estimate, not a camera.

    Focal lengths are relative to the image width: 0.2 is a 136° horizontal field of view, 30 is
    under 2°. Heights and distances are in metres from the centre mark; stadium cameras sit a few
    metres to some tens of metres up, within a few hundred metres.
    """

    min_focal_ratio: float = 0.2
    max_focal_ratio: float = 30.0
    min_height_m: float = 0.5
    max_height_m: float = 200.0
    max_distance_m: float = 400.0
    inlier_px: float = 10.0
    max_rmse_px: float = 5.0
    min_inlier_fraction: float = 0.5


DEFAULT_LIMITS = CameraLimits()
DEFAULT_MIN_CONFIDENCE = 0.3
"""Heatmap peaks of a softmax trained towards 1.0 sit well below it; the robust fit copes with the
few false peaks a low bar lets through better than with the true points a high bar would lose."""


@dataclass(frozen=True)
class _Fit:
    """A camera hypothesis: focal length, world-to-camera rotation vector and translation."""

    focal: float
    rvec: np.ndarray
    tvec: np.ndarray
    cost: float


def estimate_camera(
    keypoints: np.ndarray,
    width: int = 960,
    height: int = 540,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    limits: CameraLimits = DEFAULT_LIMITS,
) -> dict | None:
    """A camera in SoccerNet's JSON form (``Camera.to_json_parameters``) or None.

    ``keypoints`` is (57, 2) or (57, 3): x, y in pixels of a ``width`` × ``height`` image and,
    optionally, a confidence; rows with a confidence below ``min_confidence`` or a non-finite
    coordinate are unused. Bad input of any kind gives None, never an exception: a frame the
    estimator cannot handle is a missed frame to the metric, not a crashed evaluation.
    """
    matches = _matches(keypoints, min_confidence)
    if matches is None:
        return None
    indices, image = matches
    try:
        fit = _solve(indices, image, width, height, limits)
    except (cv2.error, np.linalg.LinAlgError, ValueError, ArithmeticError):
        return None
    if fit is None:
        return None
    return _to_json(fit, width, height)


def _matches(keypoints: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices and image positions of the usable keypoints, or None when the input is not a (57, 2|3) array."""
    try:
        kps = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if kps.ndim != 2 or kps.shape[0] != NUM_KEYPOINTS or kps.shape[1] not in (2, 3):
        return None
    with np.errstate(invalid="ignore"):
        usable = (np.abs(kps[:, :2]) <= _MAX_COORDINATE_PX).all(axis=1)
    if kps.shape[1] == 3:
        with np.errstate(invalid="ignore"):
            usable &= np.nan_to_num(kps[:, 2], nan=-np.inf) >= min_confidence
    indices = np.flatnonzero(usable)
    if len(indices) < MIN_POINTS:
        return None
    return indices, kps[indices, :2].copy()


def _spread(points: np.ndarray) -> float:
    """Second principal spread (RMS distance from the best line); ~0 for collinear points."""
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return float(singular[1] / math.sqrt(len(points))) if len(singular) > 1 else 0.0


def _determined(world: np.ndarray, image: np.ndarray) -> bool:
    """Whether the points can fix a camera: at least four, and neither world nor image collinear."""
    return (
        len(world) >= MIN_POINTS
        and _spread(world) >= _MIN_WORLD_SPREAD_M
        and _spread(image) >= _MIN_IMAGE_SPREAD_PX
    )


def _on_ground(world: np.ndarray) -> np.ndarray:
    return np.abs(world[:, 2]) < 1e-9


def _intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def _solve(indices: np.ndarray, image: np.ndarray, width: int, height: int, limits: CameraLimits) -> _Fit | None:
    """Drop outliers among the ground points, start from every focal guess, keep the best refined camera."""
    all_world, all_image = XYZ[indices], image
    keep = _ground_inliers(all_world, all_image, limits.inlier_px)
    if keep.mean() < limits.min_inlier_fraction:
        return None
    world, image = all_world[keep], all_image[keep]
    if not _determined(world, image):
        return None
    focal_range = (limits.min_focal_ratio * width, limits.max_focal_ratio * width)
    starts = _focal_starts(world, image, width, height, focal_range)
    ranked = []
    for focal in starts:
        matrix = _intrinsics(focal, width, height)
        ranked += [(_start_cost(world, image, matrix, *pose), focal, pose) for pose in _poses(world, image, matrix)]
    ranked = sorted((start for start in ranked if math.isfinite(start[0])), key=lambda start: start[0])
    best: _Fit | None = None
    for _, focal, pose in ranked[:_REFINED_STARTS]:
        fit = _refine(world, image, focal, pose, width, height)
        if fit is not None and _above_ground(fit) and (best is None or fit.cost < best.cost):
            best = fit
    if best is None:
        return None
    best = _drop_outliers(world, image, best, width, height, limits)
    if best is None or not _plausible(best, all_world, all_image, width, height, limits):
        return None
    return best


def _ground_inliers(world: np.ndarray, image: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of points to keep: ground points off a RANSAC homography are dropped, others kept for now.

    With four ground points the homography fits exactly and tells nothing, so all are kept.
    """
    keep = np.ones(len(world), dtype=bool)
    ground = _on_ground(world)
    if ground.sum() <= MIN_POINTS or not _determined(world[ground], image[ground]):
        return keep
    _, mask = cv2.findHomography(
        world[ground, :2], image[ground], cv2.RANSAC, threshold, maxIters=_RANSAC_ITERATIONS, confidence=0.999
    )
    if mask is None:
        return keep
    inliers = mask.ravel().astype(bool)
    if inliers.sum() >= MIN_POINTS:
        keep[np.flatnonzero(ground)[~inliers]] = False
    return keep


def _focal_starts(
    world: np.ndarray, image: np.ndarray, width: int, height: int, focal_range: tuple[float, float]
) -> list[float]:
    """Focal lengths to start the refinement from, deduplicated (within 2%)."""
    candidates = _homography_focals(world, image, width, height)
    candidates += _plane_calibration_focals(world, image, width, height)
    candidates += _swept_focals(world, image, width, height, focal_range)
    lo, hi = focal_range
    starts: list[float] = []
    for focal in sorted(f for f in candidates if math.isfinite(f) and lo <= f <= hi):
        if not starts or focal > starts[-1] * 1.02:
            starts.append(focal)
    return starts


def _homography_focals(world: np.ndarray, image: np.ndarray, width: int, height: int) -> list[float]:
    """Focal lengths from the ground homography's two constraints, each solved on its own.

    With K = diag(f, f, 1) in centred pixels, the first two columns h1, h2 of K⁻¹H are a scaled
    rotation's: orthogonal and of equal norm. Each gives 1/f² linearly; when the camera's axis
    meets a vanishing line one of them degenerates, so each is a separate candidate.
    """
    ground = _on_ground(world)
    if ground.sum() < MIN_POINTS or not _determined(world[ground], image[ground]):
        return []
    homography, _ = cv2.findHomography(world[ground, :2], image[ground], 0)
    if homography is None:
        return []
    scale = float(width)
    centring = np.array([[1 / scale, 0, -width / 2 / scale], [0, 1 / scale, -height / 2 / scale], [0, 0, 1]])
    h = centring @ homography
    h1, h2 = h[:, 0], h[:, 1]
    equations = (
        (h1[0] * h2[0] + h1[1] * h2[1], h1[2] * h2[2]),
        (h1[0] ** 2 + h1[1] ** 2 - h2[0] ** 2 - h2[1] ** 2, h1[2] ** 2 - h2[2] ** 2),
    )
    focals = []
    for a, b in equations:
        if abs(a) > 1e-12:
            inverse_square = -b / a
            if inverse_square > 0:
                focals.append(scale / math.sqrt(inverse_square))
    return focals


def _plane_views(world: np.ndarray, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ground and each goal plane with enough non-collinear points, in plane coordinates (z = 0)."""
    views = []
    ground = _on_ground(world)
    planes = [(ground, world[:, :2])]
    for side in (-1.0, 1.0):
        on_plane = np.abs(world[:, 0] - side * _GOAL_LINE_X) < 1e-9
        planes.append((on_plane, world[:, 1:3]))
    for mask, coords in planes:
        if mask.sum() >= _MIN_PLANE_VIEW_POINTS and _determined(coords[mask], image[mask]):
            plane = np.zeros((int(mask.sum()), 3), dtype=np.float32)
            plane[:, :2] = coords[mask]
            views.append((plane, image[mask].astype(np.float32)))
    return views


def _plane_calibration_focals(world: np.ndarray, image: np.ndarray, width: int, height: int) -> list[float]:
    """OpenCV's planar calibration over the plane views: fixed centre and aspect, no distortion."""
    views = _plane_views(world, image)
    if not views:
        return []
    flags = (
        cv2.CALIB_FIX_PRINCIPAL_POINT
        | cv2.CALIB_FIX_ASPECT_RATIO
        | cv2.CALIB_ZERO_TANGENT_DIST
        | cv2.CALIB_FIX_K1
        | cv2.CALIB_FIX_K2
        | cv2.CALIB_FIX_K3
    )
    try:
        _, matrix, _, _, _ = cv2.calibrateCamera(
            [v[0] for v in views], [v[1] for v in views], (width, height), _intrinsics(1.0, width, height),
            np.zeros(5), flags=flags,
        )
    except cv2.error:
        return []
    return [float(matrix[0, 0])]


def _swept_focals(
    world: np.ndarray, image: np.ndarray, width: int, height: int, focal_range: tuple[float, float]
) -> list[float]:
    """The best few of a log-spaced sweep of focal lengths, each scored by its PnP poses' robust cost."""
    scored = []
    for focal in np.geomspace(*focal_range, _SWEEP_STEPS):
        matrix = _intrinsics(float(focal), width, height)
        errors = [_start_cost(world, image, matrix, rvec, tvec) for rvec, tvec in _poses(world, image, matrix)]
        finite = [e for e in errors if math.isfinite(e)]
        if finite:
            scored.append((min(finite), float(focal)))
    return [focal for _, focal in sorted(scored)[:_SWEEP_KEEP]]


def _poses(world: np.ndarray, image: np.ndarray, matrix: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """PnP poses for a known focal length: SQPnP's global optimum, plus both IPPE solutions on the ground.

    A plane seen from a distance has two poses that fit almost equally well (one mirrored
    through the viewing direction); the refinement and the above-ground test pick between them.
    """
    poses = []
    objects = world.astype(np.float64).reshape(-1, 1, 3)
    points = image.astype(np.float64).reshape(-1, 1, 2)
    try:
        ok, rvecs, tvecs, _ = cv2.solvePnPGeneric(objects, points, matrix, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            poses += list(zip(rvecs, tvecs))
    except cv2.error:
        pass
    ground = _on_ground(world)
    if ground.sum() >= MIN_POINTS:
        try:
            ok, rvecs, tvecs, _ = cv2.solvePnPGeneric(
                objects[ground], points[ground], matrix, None, flags=cv2.SOLVEPNP_IPPE
            )
            if ok:
                poses += list(zip(rvecs, tvecs))
        except cv2.error:
            pass
    return [(r.reshape(3).astype(np.float64), t.reshape(3).astype(np.float64)) for r, t in poses]


def _start_cost(
    world: np.ndarray, image: np.ndarray, matrix: np.ndarray, rvec: np.ndarray, tvec: np.ndarray
) -> float:
    """The refinement's robust cost at a start, so starts are ranked by what the refinement minimises."""
    projected, _ = cv2.projectPoints(world, rvec, tvec, matrix, None)
    return _robust(np.linalg.norm(projected.reshape(-1, 2) - image, axis=1))[0]


def _project(world: np.ndarray, params: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Residual-ready projections (2N,) and their Jacobian (2N, 7) in (rvec, tvec, log f)."""
    focal = math.exp(params[6])
    projected, jac = cv2.projectPoints(world, params[:3], params[3:6], _intrinsics(focal, width, height), None)
    return projected.reshape(-1), np.hstack([jac[:, :6], (jac[:, 6:7] + jac[:, 7:8]) * focal])


def _robust(errors: np.ndarray) -> tuple[float, np.ndarray]:
    """Soft-L1 cost of per-point errors and the IRLS weights that minimise it."""
    ratio = (errors / _ROBUST_SCALE_PX) ** 2
    cost = float(np.sum(2 * _ROBUST_SCALE_PX**2 * (np.sqrt(1 + ratio) - 1)))
    return cost, 1 / np.sqrt(1 + ratio)


def _refine(
    world: np.ndarray, image: np.ndarray, focal: float, pose: tuple[np.ndarray, np.ndarray], width: int, height: int
) -> _Fit | None:
    """Joint Levenberg-Marquardt over rotation, translation and log focal length, soft-L1 weighted.

    The focal length enters as its logarithm so steps are relative (1% means the same at 500 px
    as at 10,000 px). A hand-rolled LM on seven parameters with cv2's exact Jacobians is about a
    hundred times faster than scipy's general solver here, and runs once per start per frame.
    """
    params = np.concatenate([pose[0], pose[1], [math.log(focal)]])
    target = image.reshape(-1)
    projected, jac = _project(world, params, width, height)
    residual = projected - target
    cost, weights = _robust(np.linalg.norm(residual.reshape(-1, 2), axis=1))
    damping = 1e-3
    for _ in range(_LM_MAX_ITERATIONS):
        w = np.repeat(weights, 2)
        normal = jac.T @ (jac * w[:, None])
        gradient = jac.T @ (w * residual)
        try:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), -gradient)
        except np.linalg.LinAlgError:
            return None
        candidate = params + step
        candidate[6] = np.clip(candidate[6], *_LOG_FOCAL_RANGE)
        projected_new, jac_new = _project(world, candidate, width, height)
        residual_new = projected_new - target
        cost_new, weights_new = _robust(np.linalg.norm(residual_new.reshape(-1, 2), axis=1))
        if np.isfinite(cost_new) and cost_new <= cost:
            converged = cost - cost_new <= 1e-9 * cost or cost_new < 1e-12
            params, jac, residual, cost, weights = candidate, jac_new, residual_new, cost_new, weights_new
            damping = max(damping / 10, 1e-12)
            if converged:
                break
        else:
            damping *= 10
            if damping > 1e8:
                break
    if not np.all(np.isfinite(params)):
        return None
    return _Fit(math.exp(params[6]), params[:3].copy(), params[3:6].copy(), cost)


def _camera_centre(fit: _Fit) -> np.ndarray:
    rotation, _ = cv2.Rodrigues(fit.rvec)
    return -rotation.T @ fit.tvec


def _above_ground(fit: _Fit) -> bool:
    """SoccerNet's z axis points into the ground, so a real camera has z < 0."""
    return bool(_camera_centre(fit)[2] < 0)


def _errors(world: np.ndarray, image: np.ndarray, fit: _Fit, width: int, height: int) -> np.ndarray:
    projected, _ = cv2.projectPoints(world, fit.rvec, fit.tvec, _intrinsics(fit.focal, width, height), None)
    return np.linalg.norm(projected.reshape(-1, 2) - image, axis=1)


def _drop_outliers(
    world: np.ndarray, image: np.ndarray, fit: _Fit, width: int, height: int, limits: CameraLimits
) -> _Fit | None:
    """Refit once without the points the robust fit left far off; give up if too few remain."""
    inliers = _errors(world, image, fit, width, height) <= limits.inlier_px
    if inliers.all():
        return fit
    if inliers.mean() < limits.min_inlier_fraction or not _determined(world[inliers], image[inliers]):
        return None
    return _refine(world[inliers], image[inliers], fit.focal, (fit.rvec, fit.tvec), width, height)


def _plausible(
    fit: _Fit, world: np.ndarray, image: np.ndarray, width: int, height: int, limits: CameraLimits
) -> bool:
    """Whether the camera could have filmed a match and explains most of the points it was given.

    The share of inliers is taken over every usable point, outliers dropped on the way included:
    among random points RANSAC always finds four that some camera fits.
    """
    if not limits.min_focal_ratio * width <= fit.focal <= limits.max_focal_ratio * width:
        return False
    centre = _camera_centre(fit)
    if not limits.min_height_m <= -centre[2] <= limits.max_height_m:
        return False
    if math.hypot(centre[0], centre[1]) > limits.max_distance_m:
        return False
    errors = _errors(world, image, fit, width, height)
    inliers = errors <= limits.inlier_px
    if inliers.mean() < limits.min_inlier_fraction or inliers.sum() < MIN_POINTS:
        return False
    rotation, _ = cv2.Rodrigues(fit.rvec)
    if not np.all((world[inliers] @ rotation.T + fit.tvec)[:, 2] > 0):
        return False
    return float(np.sqrt(np.mean(errors[inliers] ** 2))) <= limits.max_rmse_px


def _to_json(fit: _Fit, width: int, height: int) -> dict:
    """SoccerNet's own serialiser, so the pan/tilt/roll convention is exactly the one the evaluation reads."""
    camera = Camera(width, height)
    rotation, _ = cv2.Rodrigues(fit.rvec)
    camera.rotation = rotation
    camera.position = _camera_centre(fit)
    camera.xfocal_length = float(fit.focal)
    camera.yfocal_length = float(fit.focal)
    camera.principal_point = (width / 2.0, height / 2.0)
    params = camera.to_json_parameters()
    for key in ("pan_degrees", "tilt_degrees", "roll_degrees"):
        params[key] = float(params[key])
    return params
