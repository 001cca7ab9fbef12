"""A SoccerNet camera from predicted pitch keypoints.

The challenge scores cameras, the model predicts points, so this module is the bridge. It does
not use SoccerNet 0.2.0's ``Camera.from_homography``: that divides by the column norms where it
should multiply when it normalises the rotation columns, and its intrinsics solver hard-codes a
9/16 aspect. Instead the camera model is the one the annotations imply (square pixels, zero skew,
principal point at the image centre, no distortion), so only the focal length and the pose are
free.

Validation runs this on every frame of every epoch, so each step is closed-form or vectorised
numpy; OpenCV's solvers cost more in call overhead than the arithmetic here does. About 1.5 ms a
frame on one core where the multi-start solver before it took 15-18 ms, for the same score
(``python bench/calibrate.py`` runs both on the same keypoints):

- Outliers: a least-squares homography of the ground points, with each point's deleted residual
  (how far the fit of the others puts it). All within ``inlier_px``: nothing to drop. All but
  the worst within it once the worst is left out: that one false peak is dropped. Otherwise a
  RANSAC decides which ground points to drop, its minimal samples drawn in batches and all
  solved at once (four points fix a homography in closed form).
- Starts: the ground's homography where its points fix one, else that of each goal plane whose
  points do (a goal-mouth view). For a log-spaced sweep of focal lengths, plus the ones the
  homography's two constraints on a pure focal length give in closed form, the homography
  decomposes into a pose at once, and each start is scored by the refinement's own robust cost
  over all points. The sweep is the safety net where the closed forms degenerate (a vanishing
  point near the image centre makes a constraint vanish). Only where these give no plausible
  camera (or no plane fixes a homography) does PnP (SQPnP, slower) give a sweep its poses.
- Refinement: one joint Levenberg-Marquardt over rotation, translation and focal length from the
  best start, over all matched points with a robust loss, so one bad point bends the camera
  little and is then dropped as an outlier. Further distinct starts are refined only when the
  best one gives no plausible camera or the points are few, and a start still far from most points after a few
  steps is abandoned rather than followed to the iteration limit.

Nothing in this depends on which half of the pitch is in view, so a camera panned right is solved
like one panned left. Implausible cameras (focal length, height, distance, points behind the
camera, poor fit) are rejected: no camera is scored as a missed frame, a wrong one as a bad frame.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.keypoints.table import NUM_KEYPOINTS, XYZ

_GOAL_LINE_X = 52.5
MIN_POINTS = 4
"""Fewest usable keypoints a camera is estimated from (``predict`` names it when a frame has fewer)."""
_MIN_WORLD_SPREAD_M = 1.0
"""Points closer than this to one line in 3D leave the camera's rotation about that line free."""
_MIN_IMAGE_SPREAD_PX = 2.0
_MIN_HOMOGRAPHY_SPREAD_M = 0.2
"""Plane points with any one left out must be this far from collinear: pitch lines make exactly
collinear sets, while near-collinear ones (a penalty arc's ends and its top) still fix a homography."""
_MAX_COORDINATE_PX = 1e5
"""A keypoint a hundred image widths off is not a prediction but a numerical accident."""
_LOG_FOCAL_RANGE = (0.0, 25.0)
"""Bounds on log focal length inside the refinement, wide but finite so a diverging step cannot overflow."""
_RANSAC_ITERATIONS = 300
"""Enough to draw an all-inlier sample of four with near certainty at the 50% inliers we accept at least."""
_RANSAC_BATCH = 50
"""Samples solved per numpy pass; the RANSAC stops after the first batch that makes further ones needless."""
_RANSAC_CONFIDENCE = 0.999
_SWEEP_FRACTIONS = np.linspace(0.0, 1.0, 48)
"""Focal lengths per plane, log-spaced, 11% apart over the plausible range: a start costs one row of arithmetic."""
_PNP_SWEEP_FRACTIONS = np.linspace(0.0, 1.0, 24)
"""Focal lengths when PnP must give the poses: each costs a solver call, and few frames need it."""
_BEHIND_CAMERA_PX = 1e4
"""The error a start is charged for a point behind its camera: large, finite, so starts still rank."""
_ROBUST_SCALE_PX = 2.0
"""Residuals beyond this grow only linearly in the refinement (soft L1), so outliers pull less."""
_LM_MAX_ITERATIONS = 50
_HOPELESS_AFTER = 10
"""Steps after which a refinement that has not brought most points near is given up (see ``_refine``)."""
_LM_TOLERANCE = 1e-3
"""Relative cost decrease that ends the refinement: near the minimum a cost this much lower is points
moved by about 0.03 px RMS at 1 px of keypoint noise, and bench/calibrate.py's cameras agree with a
1e-4 tolerance's within 0.1% in focal length, most of them one iteration sooner."""
_REFINED_STARTS = 4
"""Starts refined at most, when the best ones give no plausible camera or the points are few."""
_FEW_POINTS = 8
"""Below this many points a fit has little to spare (14 numbers for 7 unknowns at 7 points) and distinct
starts can end in distinct minima of similar cost: all are refined and the lowest kept, not the first."""
_DISTINCT_FOCAL_RATIO = 1.25
"""A start whose focal length is this close to one already refined would most likely end where it did."""
_NEXT, _AFTER_NEXT = np.array([1, 2, 0]), np.array([2, 0, 1])
_DIAGONAL = np.diag_indices(7)
_JACOBIAN_LINEAR = np.array(
    [  # blocks A, B, C of ``_jacobian``, each over the 7 parameters
        [[0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]],  # × x of p
        [[0, 0, -1, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],  # × y of p
        [[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0, 0]],  # × z of p
    ],
    dtype=np.float64,
).reshape(3, 21)
_JACOBIAN_CONSTANT = np.array(
    [[0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, -1, 0], [0, 0, 0, 0, 1, 0, 0]], dtype=np.float64
).reshape(21)
"""``_jacobian``'s A = (0, z, −y, 1, 0, 0, 0), B = (−y, x, 0, 0, 0, −1, 0), C = (−z, 0, x, 0, 1, 0, 0)
of p = (x, y, z) as p · ``_JACOBIAN_LINEAR`` + ``_JACOBIAN_CONSTANT``."""
_DETERMINANT_A, _DETERMINANT_B, _DETERMINANT_C = np.array([3, 0, 0]), np.array([1, 3, 1]), np.array([2, 2, 3])
"""Which of four points make the determinants |a b c| that weigh a projective basis (see ``_projective_bases``)."""


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
    """A camera hypothesis: focal length, world-to-camera rotation matrix and translation, robust cost.

    Image coordinates are centred on the principal point throughout, so the focal length is the
    only intrinsic.
    """

    focal: float
    rotation: np.ndarray
    tvec: np.ndarray
    cost: float


@dataclass(frozen=True)
class _Plane:
    """A pitch plane: its points are ``origin + a·axes[:, 0] + b·axes[:, 1]``; ``axes[:, 2]`` is its normal.

    The axes are right-handed, so a pose of the plane (a, b) → camera turns into a pose of the
    world by one matrix product.
    """

    origin: np.ndarray
    axes: np.ndarray

    def holds(self, world: np.ndarray) -> np.ndarray:
        return np.abs((world - self.origin) @ self.axes[:, 2]) < 1e-9

    def coordinates(self, world: np.ndarray) -> np.ndarray:
        return (world - self.origin) @ self.axes[:, :2]


_GROUND = _Plane(np.zeros(3), np.eye(3))
_GOAL_AXES = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""Columns pitch y, height z and their normal x: a goal plane's (a, b) are SoccerNet's (y, z)."""
_GOAL_PLANES = tuple(_Plane(np.array([side * _GOAL_LINE_X, 0.0, 0.0]), _GOAL_AXES) for side in (-1.0, 1.0))


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
        with np.errstate(all="ignore"):
            fit = _solve(XYZ[indices], image - (width / 2.0, height / 2.0), width, limits)
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
            usable &= kps[:, 2] >= min_confidence  # False for NaN
    indices = np.flatnonzero(usable)
    if len(indices) < MIN_POINTS:
        return None
    return indices, kps[indices, :2]


def _spread(points: np.ndarray) -> float:
    """Second principal spread (RMS distance from the best line); ~0 for collinear points.

    The square root of the second largest eigenvalue of the points' second moments.
    """
    centred = points - points.sum(axis=0) / len(points)
    moments = centred.T @ centred / len(points)
    if len(moments) == 2:
        (a, b), (_, c) = moments.tolist()
        second = (a + c) / 2 - math.hypot((a - c) / 2, b)
    else:
        second = float(cv2.eigen(moments)[1][1, 0])
    return math.sqrt(max(second, 0.0))


def _determined(world: np.ndarray, image: np.ndarray) -> bool:
    """Whether the points can fix a camera: at least four, and neither world nor image collinear."""
    return (
        len(world) >= MIN_POINTS
        and _spread(world) >= _MIN_WORLD_SPREAD_M
        and _spread(image) >= _MIN_IMAGE_SPREAD_PX
    )


def _fixes_homography(plane: np.ndarray, image: np.ndarray) -> bool:
    """Whether plane points fix a homography: four or more, no line through all but one of them
    on the pitch, and not all on one line in the image.

    Three of four points on a line (a goal line's points and one more, as in a goal-mouth view)
    are matched by a whole family of homographies, so the one least squares picks means nothing.
    """
    return (
        len(plane) >= MIN_POINTS
        and _leave_one_out_spread(plane) >= _MIN_HOMOGRAPHY_SPREAD_M
        and _spread(image) >= _MIN_IMAGE_SPREAD_PX
    )


def _leave_one_out_spread(points: np.ndarray) -> float:
    """The least second principal spread (see ``_spread``) of 2D points with any one of them left out."""
    centred = points - points.sum(axis=0) / len(points)
    x, y = centred[:, 0], centred[:, 1]
    rest = len(points) - 1
    mean_x, mean_y = -x / rest, -y / rest  # the centred sums are 0, so without point i they are -x[i], -y[i]
    a = (float((x * x).sum()) - x * x) / rest - mean_x * mean_x
    b = (float((x * y).sum()) - x * y) / rest - mean_x * mean_y
    c = (float((y * y).sum()) - y * y) / rest - mean_y * mean_y
    second = (a + c) / 2 - np.hypot((a - c) / 2, b)
    return math.sqrt(max(float(second.min()), 0.0))


def _solve(all_world: np.ndarray, all_image: np.ndarray, width: int, limits: CameraLimits) -> _Fit | None:
    """Drop outliers among the ground points, refine the best start (others only if needed), check the camera."""
    keep, ground_homography = _ground_inliers(all_world, all_image, limits.inlier_px)
    if keep.sum() < limits.min_inlier_fraction * len(keep):
        return None
    world, image = all_world[keep], all_image[keep]
    if not _determined(world, image):
        return None
    focal_range = (limits.min_focal_ratio * width, limits.max_focal_ratio * width)
    every_start = len(world) < _FEW_POINTS
    for starts in _start_stages(world, image, focal_range, ground_homography):
        best: tuple[float, _Fit] | None = None
        for cost, fit in _refined(world, image, starts, limits):
            if (best is None or cost < best[0]) and _plausible(fit, all_world, all_image, width, limits):
                best = cost, fit
                if not every_start:
                    break
        if best is not None:
            return best[1]
    return None


def _refined(
    world: np.ndarray, image: np.ndarray, starts: Iterator[tuple[float, np.ndarray, np.ndarray]], limits: CameraLimits
) -> Iterator[tuple[float, _Fit]]:
    """Each distinct start refined (at most ``_REFINED_STARTS``): the robust cost, and the camera with outliers dropped.

    Starts that end below the ground or with too few inliers are passed over.
    """
    tried: list[float] = []
    for focal, rotation, tvec in starts:
        if len(tried) == _REFINED_STARTS:
            return
        if any(abs(math.log(focal / other)) < math.log(_DISTINCT_FOCAL_RATIO) for other in tried):
            continue
        tried.append(focal)
        fit = _refine(world, image, _Fit(focal, rotation, tvec, math.inf), limits)
        if fit is None or not _above_ground(fit):
            continue
        cleaned = _drop_outliers(world, image, fit, limits)
        if cleaned is not None:
            yield fit.cost, cleaned


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross products along the last axis; ``np.cross`` costs several times more on small arrays."""
    return a[..., _NEXT] * b[..., _AFTER_NEXT] - a[..., _AFTER_NEXT] * b[..., _NEXT]


def _homogeneous(points: np.ndarray) -> np.ndarray:
    out = np.ones(points.shape[:-1] + (3,))
    out[..., :2] = points
    return out


# --- homographies -------------------------------------------------------------------------------


def _fit_homography(
    source: np.ndarray, target: np.ndarray, deleted: bool = False
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Least-squares homography source → target and, if ``deleted``, each point's deleted residual; None when not finite.

    DLT on normalised points (centroid at the origin, mean distance √2, so the least squares is
    conditioned in metres and pixels alike) with the last entry 1: the sources' centroid maps to a
    positive third coordinate, so the sign puts the points in front of the camera and a pose read
    from the homography faces them.

    A point's deleted residual (pixels) is how far the homography of all the other points puts
    it, from the block-deletion formula of linear least squares instead of a refit per point:
    a false peak far from the others bends the fit towards itself, and only this shows it. It
    costs as much as the fit, so only the outlier test asks for it.
    """
    source_points, source_forward, _ = _normalised(source)
    target_points, _, target_inverse = _normalised(target)
    plane = _homogeneous(source_points)
    rows = np.zeros((len(plane), 2, 8))
    rows[:, 0, :3] = plane
    rows[:, 1, 3:6] = plane
    rows[:, :, 6:] = -target_points[:, :, None] * plane[:, None, :2]
    flat = rows.reshape(-1, 8)
    solved, inverse = cv2.invert(flat.T @ flat, flags=cv2.DECOMP_CHOLESKY)
    if not solved:
        return None
    entries = inverse @ (flat.T @ target_points.reshape(-1))
    homography = target_inverse @ np.append(entries, 1.0).reshape(3, 3) @ source_forward
    if not np.isfinite(homography).all():
        return None
    if not deleted:
        return homography, None
    residual = rows @ entries - target_points  # (N, 2), algebraic: the pixel error times the point's depth
    block = np.eye(2) - (rows @ inverse) @ rows.swapaxes(1, 2)  # I − the hat matrix's 2×2 block of each point
    determinant = block[:, 0, 0] * block[:, 1, 1] - block[:, 0, 1] * block[:, 1, 0]
    deleted_u = (block[:, 1, 1] * residual[:, 0] - block[:, 0, 1] * residual[:, 1]) / determinant
    deleted_v = (block[:, 0, 0] * residual[:, 1] - block[:, 1, 0] * residual[:, 0]) / determinant
    depth = np.abs(plane[:, :2] @ entries[6:] + 1.0)  # each image point's third homogeneous coordinate
    return homography, np.hypot(deleted_u, deleted_v) / depth * target_inverse[0, 0]  # normalised units to pixels


def _normalised(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points moved to centroid 0 and mean distance √2, the matrix doing that and its inverse."""
    centroid = points.sum(axis=0) / len(points)
    centred = points - centroid
    scale = math.sqrt(2.0) * len(points) / max(float(np.sqrt((centred * centred).sum(axis=1)).sum()), 1e-12)
    cx, cy = centroid.tolist()
    forward = np.array([[scale, 0.0, -scale * cx], [0.0, scale, -scale * cy], [0.0, 0.0, 1.0]])
    inverse = np.array([[1 / scale, 0.0, cx], [0.0, 1 / scale, cy], [0.0, 0.0, 1.0]])
    return centred * scale, forward, inverse


def _transfer_errors(homographies: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, N) pixel distances between each homography's image of the sources and the targets; inf where undefined."""
    mapped = _homogeneous(source) @ homographies.swapaxes(1, 2)
    difference = mapped[..., :2] / mapped[..., 2:] - target
    errors = np.sqrt((difference * difference).sum(axis=2))
    return np.where(np.isfinite(errors), errors, np.inf)


def _projective_bases(points: np.ndarray) -> np.ndarray:
    """(B, 3, 3) matrices taking e1, e2, e3 to the first three of each four points and (1, 1, 1) to the fourth.

    Column i is point i (homogeneous) times λi, where λ solves λ1·p1 + λ2·p2 + λ3·p3 = p4: by
    Cramer's rule, up to a common factor, the determinants |p4 p2 p3|, |p1 p4 p3|, |p1 p2 p4|, and
    |a b c| of points with a last coordinate of 1 is the 2D cross product (b − a) × (c − a).
    """
    origin = points[:, _DETERMINANT_A]
    u, v = points[:, _DETERMINANT_B] - origin, points[:, _DETERMINANT_C] - origin
    weights = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    return (_homogeneous(points[:, :3]) * weights[:, :, None]).swapaxes(1, 2)


def _four_point_homographies(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(B, 3, 3) homographies, each exact on its four (source, target) pairs: target basis · source basis⁻¹.

    The inverse is the adjugate (a scale does not change a homography), so a degenerate sample
    gives a meaningless matrix that no point agrees with, never an exception.
    """
    columns = _projective_bases(source).swapaxes(1, 2)
    adjugate = _cross(columns[:, _NEXT], columns[:, _AFTER_NEXT])
    return _projective_bases(target) @ adjugate


def _ground_inliers(world: np.ndarray, image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Mask of points to keep (ground points off the ground homography dropped, others kept for now),
    and the homography of the kept ground points (None where they do not fix one).

    With four ground points the homography fits exactly and tells nothing, so all are kept; where
    the ground points fix no homography, RANSAC's samples would not either, so all are kept.
    Where the homography of the others puts every point within ``threshold`` (its deleted
    residual), the consensus a RANSAC would find is all of them, and the RANSAC is skipped: most
    frames; where all but the worst point agree so, that one is dropped (``_without_worst``).
    Otherwise a RANSAC decides: a point far from the others' fit may be a false peak or a true
    one with much leverage, and only the consensus tells which.
    """
    keep = np.ones(len(world), dtype=bool)
    ground = _GROUND.holds(world)
    plane, points = world[ground, :2], image[ground]
    if not _fixes_homography(plane, points):
        return keep, None
    fit = _fit_homography(plane, points, deleted=True)
    if fit is None:
        return keep, None
    homography, deleted = fit
    if len(plane) == MIN_POINTS or (deleted <= threshold).all():
        return keep, homography
    ground_indices = np.flatnonzero(ground)
    single = _without_worst(plane, points, deleted, threshold)
    if single is not None:
        worst, refit = single
        keep[ground_indices[worst]] = False
        return keep, refit
    inliers = _ransac(plane, points, threshold)
    if inliers.sum() < MIN_POINTS:
        return keep, homography
    keep[ground_indices[~inliers]] = False
    if not _fixes_homography(plane[inliers], points[inliers]):
        return keep, None
    refit = _fit_homography(plane[inliers], points[inliers])
    return keep, None if refit is None else refit[0]


def _without_worst(
    plane: np.ndarray, points: np.ndarray, deleted: np.ndarray, threshold: float
) -> tuple[int, np.ndarray] | None:
    """The point with the largest deleted residual and the homography of the others, if they all agree with it.

    The common case of a frame with an outlier is one false peak. Where every other point's
    deleted residual is within ``threshold`` of the others' fit, those others are a consensus of
    all points but one, the largest a RANSAC can find when not all agree, so the RANSAC is skipped.
    """
    worst = int(np.argmax(deleted))
    rest = np.arange(len(plane)) != worst
    if rest.sum() <= MIN_POINTS or not _fixes_homography(plane[rest], points[rest]):
        return None
    fit = _fit_homography(plane[rest], points[rest], deleted=True)
    if fit is None or not (fit[1] <= threshold).all():
        return None
    return worst, fit[0]


@functools.cache
def _ransac_samples(count: int) -> np.ndarray:
    """(``_RANSAC_ITERATIONS``, 4) distinct indices below ``count``: RANSAC's minimal samples.

    Drawn once per point count from a generator seeded by it, so a frame's camera never depends
    on which frames a process solved before it (a pool and a serial run agree).
    """
    rng = np.random.default_rng(count)
    return np.argsort(rng.random((_RANSAC_ITERATIONS, count)), axis=1)[:, :MIN_POINTS]


def _ransac(plane: np.ndarray, points: np.ndarray, threshold: float) -> np.ndarray:
    """Inliers of the homography most points agree with (ties: the smaller squared error), then refitted.

    Minimal samples are solved a batch at a time, and batches stop once the best consensus so far
    makes an all-inlier sample among those drawn near certain. The least-squares refit on that
    consensus decides the final one, as a minimal sample's noise would otherwise.
    """
    count = len(plane)
    best, best_score = np.zeros(count, dtype=bool), -1.0
    drawn, needed = 0, _RANSAC_ITERATIONS
    while drawn < needed:
        samples = _ransac_samples(count)[drawn : drawn + _RANSAC_BATCH]
        errors = _transfer_errors(_four_point_homographies(plane[samples], points[samples]), plane, points)
        inliers = errors <= threshold
        scores = inliers.sum(axis=1) - (np.where(inliers, errors, 0.0) ** 2).sum(axis=1) / (count * threshold**2 + 1)
        index = int(np.argmax(scores))
        if scores[index] > best_score:
            best, best_score = inliers[index], float(scores[index])
        drawn += _RANSAC_BATCH
        fraction = best.sum() / count
        if fraction >= 1.0:
            break
        if fraction > 0.0:
            needed = min(_RANSAC_ITERATIONS, math.log(1 - _RANSAC_CONFIDENCE) / math.log(1 - fraction**MIN_POINTS))
    refit = _fit_homography(plane[best], points[best]) if best.sum() >= MIN_POINTS else None
    if refit is not None:
        again = _transfer_errors(refit[0][None], plane, points)[0] <= threshold
        if again.sum() >= best.sum():
            return again
    return best


# --- starts -------------------------------------------------------------------------------------


def _start_stages(
    world: np.ndarray, image: np.ndarray, focal_range: tuple[float, float], ground_homography: np.ndarray | None
) -> Iterator[Iterator[tuple[float, np.ndarray, np.ndarray]]]:
    """Starts in two stages, each made only when the one before gave no plausible camera.

    First from a plane's homography: the ground's where its points fix one (``ground_homography``,
    fitted by the outlier step), else each goal plane's that does (a goal-mouth view). Cheap, and
    enough for nearly every frame. Then PnP over all points: for points on no plane that fixes a
    homography, and for few points where a false peak went into the homography (four ground
    points fit one exactly, false or not).
    """
    if ground_homography is not None:
        homographies = [(_GROUND, ground_homography)]
    else:
        homographies = [(plane, h) for plane in _GOAL_PLANES if (h := _plane_homography(plane, world, image)) is not None]
    if homographies:
        parts = [_plane_starts(plane, homography, focal_range) for plane, homography in homographies]
        yield _ranked(world, image, *(np.concatenate(arrays) for arrays in zip(*parts)))
    yield _ranked(world, image, *_pnp_starts(world, image, focal_range))


def _ranked(
    world: np.ndarray, image: np.ndarray, focals: np.ndarray, rotations: np.ndarray, tvecs: np.ndarray
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """(focal, rotation, translation) of every start with a finite robust cost, best first.

    Handed out one at a time: the first is nearly always the last one needed.
    """
    costs = _start_costs(world, image, focals, rotations, tvecs)
    order = np.argsort(costs)
    for index in order[np.isfinite(costs[order])].tolist():
        yield float(focals[index]), rotations[index], tvecs[index]


def _plane_homography(plane: _Plane, world: np.ndarray, image: np.ndarray) -> np.ndarray | None:
    """The homography of the points on ``plane``; None where they do not fix one."""
    on_plane = plane.holds(world)
    if on_plane.sum() < MIN_POINTS:
        return None
    coordinates = plane.coordinates(world[on_plane])
    if not _fixes_homography(coordinates, image[on_plane]):
        return None
    fit = _fit_homography(coordinates, image[on_plane])
    return None if fit is None else fit[0]


def _plane_starts(
    plane: _Plane, homography: np.ndarray, focal_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts from one plane's homography: the sweep and the closed-form focal lengths, each with its pose."""
    lo, hi = focal_range
    focals = lo * (hi / lo) ** _SWEEP_FRACTIONS
    closed = [f for f in _closed_form_focals(homography, math.sqrt(lo * hi)) if lo <= f <= hi]
    if closed:
        focals = np.append(focals, closed)
    return (focals, *_decompose(plane, homography, focals))


def _closed_form_focals(homography: np.ndarray, scale: float) -> list[float]:
    """Focal lengths from a plane homography's two constraints, each alone and both in least squares.

    With K = diag(f, f, 1) in centred pixels, the first two columns h1, h2 of K⁻¹H are a scaled
    rotation's: orthogonal and of equal norm. Each gives 1/f² linearly; when the camera's axis
    meets a vanishing line one of them degenerates, hence each alone as well. ``scale``, a
    typical focal length, brings the rows to similar sizes so the least squares weighs both alike.
    """
    (a0, b0, _), (a1, b1, _), (a2, b2, _) = homography.tolist()
    a0, b0, a1, b1 = a0 / scale, b0 / scale, a1 / scale, b1 / scale
    norm = math.sqrt(a0 * a0 + b0 * b0 + a1 * a1 + b1 * b1 + a2 * a2 + b2 * b2) or 1.0
    a0, b0, a1, b1, a2, b2 = (value / norm for value in (a0, b0, a1, b1, a2, b2))
    equations = [(a0 * b0 + a1 * b1, a2 * b2), (a0 * a0 + a1 * a1 - b0 * b0 - b1 * b1, a2 * a2 - b2 * b2)]
    squared = sum(a * a for a, _ in equations)
    inverse_squares = [-b / a for a, b in equations if abs(a) > 1e-12]
    if squared > 1e-24:
        inverse_squares.append(-sum(a * b for a, b in equations) / squared)
    return [scale / math.sqrt(value) for value in inverse_squares if value > 0]


def _decompose(plane: _Plane, homography: np.ndarray, focals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3, 3) rotations and (F, 3) translations: the pose the homography implies at each focal length.

    K⁻¹H = λ[r1 r2 t] in the plane's frame. The two columns, normalised to a and b, are made
    orthonormal symmetrically (neither is favoured): r1, r2 = (ĉ ± d̂)/√2 with c = a + b,
    d = a − b; r3 = r1 × r2; then the plane's frame is turned into the world's.
    """
    scaling = np.ones((len(focals), 3))
    scaling[:, :2] = (1 / focals)[:, None]
    first, second, third = homography[:, 0] * scaling, homography[:, 1] * scaling, homography[:, 2] * scaling
    first_norm = np.sqrt((first * first).sum(axis=1))
    second_norm = np.sqrt((second * second).sum(axis=1))
    a, b = first / first_norm[:, None], second / second_norm[:, None]
    cosine = (a * b).sum(axis=1)
    inverse_c, inverse_d = 1 / np.sqrt(2 + 2 * cosine), 1 / np.sqrt(2 - 2 * cosine)
    alpha, beta = ((inverse_c + inverse_d) / math.sqrt(2.0))[:, None], ((inverse_c - inverse_d) / math.sqrt(2.0))[:, None]
    in_plane = np.empty((len(focals), 3, 3))
    in_plane[:, :, 0] = alpha * a + beta * b
    in_plane[:, :, 1] = beta * a + alpha * b
    in_plane[:, :, 2] = _cross(a, b) * (2 * inverse_c * inverse_d)[:, None]
    rotations = in_plane @ plane.axes.T
    tvecs = third * (2 / (first_norm + second_norm))[:, None] - rotations @ plane.origin
    return rotations, tvecs


def _pnp_starts(
    world: np.ndarray, image: np.ndarray, focal_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starts from SQPnP's global optimum at each of a sweep of focal lengths: for points on no common plane."""
    objects, points = world.reshape(-1, 1, 3), image.reshape(-1, 1, 2)
    focals, rotations, tvecs = [], [], []
    lo, hi = focal_range
    for focal in (lo * (hi / lo) ** _PNP_SWEEP_FRACTIONS).tolist():
        matrix = np.diag([focal, focal, 1.0])
        try:
            ok, rvecs, translations, _ = cv2.solvePnPGeneric(objects, points, matrix, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:  # SQPnP refuses points too close together in its own normalisation
            continue
        for rvec, tvec in zip(rvecs, translations) if ok else ():
            focals.append(focal)
            rotations.append(cv2.Rodrigues(rvec)[0])
            tvecs.append(tvec.reshape(3))
    return np.array(focals), np.array(rotations).reshape(-1, 3, 3), np.array(tvecs).reshape(-1, 3)


def _start_costs(
    world: np.ndarray, image: np.ndarray, focals: np.ndarray, rotations: np.ndarray, tvecs: np.ndarray
) -> np.ndarray:
    """The refinement's robust cost at each start, so starts are ranked by what the refinement minimises.

    Laid out (point, start) so that one matrix product rotates every point for every start.
    """
    camera = (world @ rotations.reshape(-1, 3).T).reshape(len(world), -1, 3) + tvecs
    depth = camera[:, :, 2]
    scale = focals / depth
    du = camera[:, :, 0] * scale - image[:, :1]
    dv = camera[:, :, 1] * scale - image[:, 1:]
    squared = du * du + dv * dv
    squared[depth <= 0] = _BEHIND_CAMERA_PX**2
    return 2 * _ROBUST_SCALE_PX**2 * (np.sqrt(1 + squared / _ROBUST_SCALE_PX**2).sum(axis=0) - len(world))


# --- refinement ---------------------------------------------------------------------------------


def _robust(residual: np.ndarray) -> tuple[float, np.ndarray]:
    """Soft-L1 cost of (N, 2) residuals' lengths and the IRLS weights that minimise it."""
    root = np.sqrt(1 + (residual * residual).sum(axis=1) / _ROBUST_SCALE_PX**2)
    return 2 * _ROBUST_SCALE_PX**2 * (float(root.sum()) - len(root)), 1 / root


def _residuals(
    world: np.ndarray, image: np.ndarray, focal: float, rotation: np.ndarray, tvec: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotated points R·X, camera points R·X + t, and the (N, 2) projection residuals."""
    rotated = world @ rotation.T
    camera = rotated + tvec
    return rotated, camera, focal * camera[:, :2] / camera[:, 2:] - image


def _jacobian(rotated: np.ndarray, camera: np.ndarray, focal: float) -> np.ndarray:
    """(N, 2, 7) derivatives of the residuals in (rotation increment, translation, log focal length).

    The rotation is updated as R ← exp([δ]×)·R, so at δ = 0 the camera point moves by δ × p,
    p = R·X, and a residual with gradient g in camera coordinates moves by δ · (p × g). With
    (u, v) = (x, y)/z, g is f/z · (1, 0, −u) for the first residual and f/z · (0, 1, −v) for the
    second. Written out, the first six entries of the rows are f/z · (A + u·B) and f/z · (C + v·B)
    with A, B, C affine in p (``_JACOBIAN_LINEAR``, ``_JACOBIAN_CONSTANT``): one matrix product
    makes all three, which is what makes an iteration cheap. The last is f·u and f·v.
    """
    blocks = (rotated @ _JACOBIAN_LINEAR + _JACOBIAN_CONSTANT).reshape(-1, 3, 7)
    depth = camera[:, 2:]
    projected = camera[:, :2] / depth
    jac = blocks[:, 0::2] + projected[:, :, None] * blocks[:, 1:2]
    jac *= (focal / depth)[:, :, None]
    jac[:, :, 6] = focal * projected
    return jac


def _refine(world: np.ndarray, image: np.ndarray, start: _Fit, limits: CameraLimits) -> _Fit | None:
    """Joint Levenberg-Marquardt over rotation, translation and log focal length, soft-L1 weighted.

    The focal length enters as its logarithm so steps are relative (1% means the same at 500 px
    as at 10,000 px). Seven parameters and analytic Jacobians: the cost is numpy's and OpenCV's
    per-call overhead, so each iteration makes as few calls as it can.

    A start that still leaves most points more than ``inlier_px`` off after
    ``_HOPELESS_AFTER`` steps is given up (None): such a fit crawls on for every iteration
    allowed and ends implausible, and on frames where no start leads anywhere (a model early in
    training) that crawl was most of the time spent.
    """
    focal, rotation, tvec = start.focal, start.rotation, start.tvec
    rotated, camera, residual = _residuals(world, image, focal, rotation, tvec)
    cost, weights = _robust(residual)
    jac = _jacobian(rotated, camera, focal)
    damping = 1e-3
    for iteration in range(_LM_MAX_ITERATIONS):
        if iteration == _HOPELESS_AFTER:
            near = (residual * residual).sum(axis=1) <= limits.inlier_px**2
            if near.sum() < limits.min_inlier_fraction * len(near):
                return None
        weighted = (jac * weights[:, None, None]).reshape(-1, 7)
        normal = weighted.T @ jac.reshape(-1, 7)
        gradient = weighted.T @ residual.reshape(-1, 1)
        normal[_DIAGONAL] = normal.diagonal() * (1 + damping) + damping * 1e-12
        solved, step = cv2.solve(normal, -gradient, flags=cv2.DECOMP_CHOLESKY)
        if not solved:
            return None
        step = step.ravel()
        log_focal = min(max(math.log(focal) + float(step[6]), _LOG_FOCAL_RANGE[0]), _LOG_FOCAL_RANGE[1])
        new = math.exp(log_focal), cv2.Rodrigues(step[:3])[0] @ rotation, tvec + step[3:6]
        rotated_new, camera_new, residual_new = _residuals(world, image, *new)
        cost_new, weights_new = _robust(residual_new)
        if cost_new <= cost:  # False for NaN
            converged = cost - cost_new <= _LM_TOLERANCE * cost or cost_new < 1e-12
            (focal, rotation, tvec), rotated, camera, residual = new, rotated_new, camera_new, residual_new
            cost, weights = cost_new, weights_new
            damping = max(damping / 10, 1e-12)
            if converged:
                break
            jac = _jacobian(rotated, camera, focal)
        else:
            damping *= 10
            if damping > 1e8:
                break
    if not (math.isfinite(focal) and np.isfinite(rotation).all() and np.isfinite(tvec).all()):
        return None
    return _Fit(focal, rotation, tvec, cost)


# --- checks -------------------------------------------------------------------------------------


def _camera_centre(fit: _Fit) -> np.ndarray:
    return -fit.rotation.T @ fit.tvec


def _above_ground(fit: _Fit) -> bool:
    """SoccerNet's z axis points into the ground, so a real camera has z < 0."""
    return bool(_camera_centre(fit)[2] < 0)


def _errors(world: np.ndarray, image: np.ndarray, fit: _Fit) -> tuple[np.ndarray, np.ndarray]:
    """Each point's reprojection error in pixels, and its depth in front of the camera."""
    _, camera, residual = _residuals(world, image, fit.focal, fit.rotation, fit.tvec)
    return np.sqrt((residual * residual).sum(axis=1)), camera[:, 2]


def _drop_outliers(world: np.ndarray, image: np.ndarray, fit: _Fit, limits: CameraLimits) -> _Fit | None:
    """Refit once without the points the robust fit left far off; give up if too few remain."""
    inliers = _errors(world, image, fit)[0] <= limits.inlier_px
    if inliers.all():
        return fit
    if inliers.sum() < limits.min_inlier_fraction * len(inliers) or not _determined(world[inliers], image[inliers]):
        return None
    return _refine(world[inliers], image[inliers], fit, limits)


def _plausible(fit: _Fit, world: np.ndarray, image: np.ndarray, width: int, limits: CameraLimits) -> bool:
    """Whether the camera could have filmed a match and explains most of the points it was given.

    The share of inliers is taken over every usable point, outliers dropped on the way included:
    among random points RANSAC always finds four that some camera fits.
    """
    if not limits.min_focal_ratio * width <= fit.focal <= limits.max_focal_ratio * width:
        return False
    x, y, z = _camera_centre(fit).tolist()
    if not limits.min_height_m <= -z <= limits.max_height_m or math.hypot(x, y) > limits.max_distance_m:
        return False
    errors, depth = _errors(world, image, fit)
    inliers = errors <= limits.inlier_px
    count = int(inliers.sum())
    if count < limits.min_inlier_fraction * len(inliers) or count < MIN_POINTS:
        return False
    if not (depth[inliers] > 0).all():
        return False
    return math.sqrt(float((errors[inliers] ** 2).sum()) / count) <= limits.max_rmse_px


def _to_json(fit: _Fit, width: int, height: int) -> dict:
    """SoccerNet's own serialiser, so the pan/tilt/roll convention is exactly the one the evaluation reads."""
    camera = Camera(width, height)
    camera.rotation = fit.rotation
    camera.position = _camera_centre(fit)
    camera.xfocal_length = float(fit.focal)
    camera.yfocal_length = float(fit.focal)
    camera.principal_point = (width / 2.0, height / 2.0)
    params = camera.to_json_parameters()
    for key in ("pan_degrees", "tilt_degrees", "roll_degrees"):
        params[key] = float(params[key])
    return params
