"""Keypoint metrics, and the challenge metric: EvalAI = completeness × JaC@5.

The challenge metric follows SoccerNet 0.2.0's ``CameraCalibration.evaluate`` (which defaults to
10 px; the challenge reports 5 px): per frame the predicted camera's pitch lines are projected with
``get_polylines(camera, 960, 540, sampling_factor=0.9)`` and compared with the annotation scaled by
(width − 1, height − 1); a line class counts as a true positive only when every annotated point of
it lies within the threshold of the projected polyline, a projected class that is not annotated is
a false positive, an annotated class that is not projected a false negative. The frame's accuracy
is TP / (TP + FP + FN), the better of the labels as given and mirrored (``mirror_labels``: the
left/right ambiguity of a camera looking along the long axis), 0 when the matrix is empty.
JaC@t is the mean of that over frames with a camera; completeness is the fraction of frames with
a camera.

``evaluate_camera_prediction`` itself is a Python loop over every annotated point and every
segment of the projected polyline (a projected centre circle alone has ~290 segments) and costs
about a second per frame; :func:`frame_accuracies` computes the same confusion counts with the
same arithmetic vectorised over segments (a test compares the two), so a validation epoch can
afford the metric.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import cv2
import numpy as np
from SoccerNet.Evaluation.utils_calibration import get_polylines, mirror_labels, scale_points

from trainer.calibration import DEFAULT_MIN_CONFIDENCE, estimate_camera
from trainer.data.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)

PCK_THRESHOLDS_PX = (2.0, 5.0, 10.0)
CHALLENGE_THRESHOLD_PX = 5.0
POLYLINE_SAMPLING = 0.9
"""Metres between projected samples of each pitch line, as the challenge evaluation uses."""
_MIN_FRAMES_PER_WORKER = 24
"""Below this many frames per process a pool costs more to start (seconds: each worker imports
OpenCV, SoccerNet and the caller's main module) than it saves at ~0.07 s a frame."""
_MAX_REPORTED_PROBLEMS = 10

Size = tuple[int, int]  # (width, height)
_T = TypeVar("_T")
_R = TypeVar("_R")

Scored = tuple[dict[float, float] | None, str | None]
"""A frame's accuracies by threshold (None: no camera) and why it could not be scored, if it could not.

Workers report problems instead of logging them: a pool process's log goes nowhere by default."""


# --------------------------------------------------------------------------------------------
# Heatmaps to keypoints, and keypoint metrics
# --------------------------------------------------------------------------------------------


def _as_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of a tensor (any device, any dtype) or array, without importing torch here."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def _log_parabola_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset of a peak from its argmax pixel, exact for a Gaussian.

    The log of a Gaussian is a parabola, so a parabola through the logs of the peak and its two
    neighbours has its vertex at the Gaussian's centre. A local weighted mean, by contrast, is
    pulled towards the argmax pixel by the window's truncation (by a quarter of a heatmap pixel
    at sigma 2). Where a neighbour is zero or the logs do not bend down, the offset is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l, log_c, log_r = np.log(left), np.log(centre), np.log(right)
        curvature = log_l - 2 * log_c + log_r
        offset = 0.5 * (log_l - log_r) / curvature
    usable = (left > 0) & (right > 0) & (centre > 0) & np.isfinite(offset) & (curvature < 0)
    return np.where(usable, np.clip(offset, -0.5, 0.5), 0.0)


def keypoints_from_heatmaps(
    probabilities: Any, stride: int, input_size: Size, out_size: Size = (960, 540)
) -> np.ndarray:
    """(B, 57, 3) x, y in pixels of ``out_size`` and the peak probability as confidence.

    ``probabilities`` is (B, 58, h, w) (the background channel last, ignored) as a torch tensor
    or array, from a network fed ``input_size`` (width, height) images at output ``stride``.
    Heatmap cell h covers input pixel (h + 0.5)·stride − 0.5, the mapping the targets were built
    with; input pixels are then scaled to ``out_size`` with the pixel-centre convention of
    cv2.resize, the one the loader used to bring keypoints to the input size.
    """
    maps = _as_numpy(probabilities)[:, :NUM_KEYPOINTS]
    batch, channels, height, width = maps.shape
    flat = maps.reshape(batch, channels, -1)
    peak = flat.argmax(axis=-1)
    confidence = np.take_along_axis(flat, peak[..., None], axis=-1)[..., 0]
    ys, xs = np.divmod(peak, width)
    b, k = np.meshgrid(np.arange(batch), np.arange(channels), indexing="ij")

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        return np.where(inside, maps[b, k, np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0.0)

    dx = _log_parabola_offset(at(ys, xs - 1), confidence, at(ys, xs + 1))
    dy = _log_parabola_offset(at(ys - 1, xs), confidence, at(ys + 1, xs))
    out = np.empty((batch, channels, 3), dtype=np.float64)
    for axis, (cells, offset) in enumerate(((xs, dx), (ys, dy))):
        input_px = (cells + offset + 0.5) * stride - 0.5
        out[..., axis] = (input_px + 0.5) * (out_size[axis] / input_size[axis]) - 0.5
    out[..., 2] = confidence
    return out


def keypoint_metrics(
    predicted: Any,
    targets: Any,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    match_px: float = CHALLENGE_THRESHOLD_PX,
    pck_px: Sequence[float] = PCK_THRESHOLDS_PX,
) -> dict[str, float]:
    """L2 error, PCK, precision and recall of predicted keypoints (both (N, 57, 3), same pixels).

    ``predicted`` is x, y, confidence; ``targets`` is x, y, state (1 visible, 0 invisible,
    −1 unknown). A point is predicted when its confidence reaches ``min_confidence``.

    - ``l2_px``: mean distance over visible targets that were predicted (NaN if there are none);
    - ``pck@t``: share of visible targets predicted within t px (a missed one is a miss);
    - ``recall``: share of visible targets that were predicted at all;
    - ``precision``: share of predictions that lie within ``match_px`` of a visible target.
      Predictions of unknown targets are left out: nothing says whether they are right.
    """
    pred, target = _as_numpy(predicted), _as_numpy(targets)
    visible = target[..., 2] == 1
    known = target[..., 2] != -1
    confident = np.nan_to_num(pred[..., 2], nan=-np.inf) >= min_confidence
    with np.errstate(invalid="ignore"):
        distance = np.linalg.norm(pred[..., :2] - target[..., :2], axis=-1)
        close = np.nan_to_num(distance, nan=np.inf)
    found = visible & confident
    n_visible, n_predictions = int(visible.sum()), int((confident & known).sum())
    metrics = {"l2_px": float(distance[found].mean()) if found.any() else math.nan}
    for t in pck_px:
        metrics[f"pck@{t:g}"] = float((found & (close < t)).sum() / n_visible) if n_visible else math.nan
    metrics["recall"] = float(found.sum() / n_visible) if n_visible else math.nan
    metrics["precision"] = float((found & (close < match_px)).sum() / n_predictions) if n_predictions else math.nan
    return metrics


# --------------------------------------------------------------------------------------------
# The challenge metric
# --------------------------------------------------------------------------------------------


def _as_array(points: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[p["x"], p["y"]] for p in points], dtype=np.float64)


def _distances_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """``distance_to_polyline`` of SoccerNet 0.2.0 for many points at once, with its arithmetic.

    Per segment: the homogeneous line through its ends, normalised; the foot of the
    perpendicular from the point; the perpendicular distance if the foot falls strictly inside
    the segment, else the distance to the nearer end. A zero-length segment yields NaN there and
    so falls back to the ends, as in the original. One polyline point: the distance to it.
    """
    if len(polyline) == 1:
        return np.sqrt(np.sum(np.square(points - polyline[0]), axis=1))
    ones = np.ones((len(polyline), 1))
    hom = np.hstack([polyline, ones])
    origin, end = hom[:-1][None], hom[1:][None]  # (1, S, 3)
    point = np.hstack([points, np.ones((len(points), 1))])[:, None]  # (P, 1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        line = np.cross(origin, end)
        line = line / np.sqrt(np.square(line[..., 0:1]) + np.square(line[..., 1:2]))
        normal = np.concatenate([line[..., :2], np.zeros_like(line[..., :1])], axis=-1)
        projected = np.cross(np.cross(normal, point), line)
        projected = projected / projected[..., 2:3]
        v2 = end - origin
        k = np.sum((projected - origin) * v2, axis=-1) / np.sum(v2 * v2, axis=-1)
        inside = (k > 0) & (k < 1)
        perpendicular = np.sqrt(np.sum(np.square(projected - point), axis=-1))
    to_ends = np.minimum(
        np.sqrt(np.sum(np.square(point[..., :2] - origin[..., :2]), axis=-1)),
        np.sqrt(np.sum(np.square(point[..., :2] - end[..., :2]), axis=-1)),
    )
    return np.min(np.where(inside, perpendicular, to_ends), axis=1)


def _class_errors(projected: Mapping[str, np.ndarray], annotated: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """Worst point distance of each class both have, and the count of classes only one has."""
    common = projected.keys() & annotated.keys()
    worst = np.array([np.max(_distances_to_polyline(annotated[c], projected[c])) for c in sorted(common)])
    return worst, len(projected.keys() ^ annotated.keys())


def _accuracy(worst: np.ndarray, unmatched: int, threshold: float) -> float:
    """TP / (TP + FP + FN) of one frame; a class is a TP when all its points are within threshold."""
    total = len(worst) + unmatched
    return float(np.sum(worst < threshold) / total) if total else 0.0


def frame_accuracies(
    camera: Mapping[str, Any],
    annotation: Mapping[str, Any],
    thresholds: Iterable[float],
    width: int = 960,
    height: int = 540,
) -> dict[float, float]:
    """The challenge's per-frame accuracy at each threshold, the better of labels and mirrored labels.

    ``annotation`` is a SoccerNet frame annotation (normalised points); ``camera`` a camera in
    SoccerNet's JSON form. Raises (KeyError, TypeError, ValueError...) on a malformed camera or
    annotation; callers decide whether that is a missed frame.
    """
    projected = {k: _as_array(v) for k, v in get_polylines(dict(camera), width, height, POLYLINE_SAMPLING).items()}
    labels = scale_points(annotation, width, height)
    choices = [
        _class_errors(projected, {k: _as_array(v) for k, v in lines.items()})
        for lines in (labels, mirror_labels(labels))
    ]
    return {float(t): max(_accuracy(worst, unmatched, float(t)) for worst, unmatched in choices) for t in thresholds}


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count, under a container or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _single_threaded() -> None:
    """Pool workers already fill every CPU; OpenCV's own threads would only contend with them."""
    cv2.setNumThreads(1)


def _pool_can_start() -> bool:
    """Whether forkserver workers can re-import ``__main__``, as they must: not when it is stdin or gone."""
    main_path = getattr(sys.modules["__main__"], "__file__", None)
    return main_path is None or os.path.exists(main_path)


def map_frames(function: Callable[[_T], _R], items: Sequence[_T], workers: int | None = None) -> list[_R]:
    """``function`` over ``items`` in order, in a process pool when there are enough frames.

    The pool uses forkserver, not fork: the caller may be a training process with torch's and
    OpenCV's thread pools running, which a fork would copy half-initialised. ``function`` must be
    a module-level function and ``items`` picklable. A pool that cannot start or dies (a worker
    killed for memory) costs time, not the result: the frames are then done here, serially.
    """
    items = list(items)
    workers = min(workers or available_cpus(), max(1, len(items) // _MIN_FRAMES_PER_WORKER))
    if workers > 1 and _pool_can_start():
        chunksize = max(1, math.ceil(len(items) / (workers * 4)))
        context = multiprocessing.get_context("forkserver")
        try:
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
                return list(pool.map(function, items, chunksize=chunksize))
        except BrokenProcessPool as error:
            log.warning("process pool failed (%s); scoring %d frames serially", error, len(items))
    return [function(item) for item in items]


def summarise(
    per_frame: Sequence[Mapping[float, float] | None], thresholds: Sequence[float], product: str = "evalai"
) -> dict[str, float | int]:
    """Completeness, accuracy@t (mean over frames with a camera) and their product at ``thresholds[0]``.

    ``per_frame`` holds each frame's accuracies by threshold, or None for a frame without a
    camera. The product is stored under ``product`` (``evalai`` for keypoints, ``combined`` for
    folders). With no camera at all the accuracies are 0, not NaN, so the product stays a number.
    """
    frames = len(per_frame)
    scored = [accuracies for accuracies in per_frame if accuracies is not None]
    summary: dict[str, float | int] = {"frames": frames, "missed": frames - len(scored)}
    summary["completeness"] = len(scored) / frames if frames else 0.0
    for t in thresholds:
        summary[f"accuracy@{t:g}"] = float(np.mean([a[float(t)] for a in scored])) if scored else 0.0
    summary[product] = summary["completeness"] * summary[f"accuracy@{thresholds[0]:g}"]
    return summary


def report_problems(results: Sequence[Scored], what: str) -> list[dict[float, float] | None]:
    """Log each frame's problem once in this process; return the accuracies alone."""
    problems = [problem for _, problem in results if problem]
    for problem in problems[:_MAX_REPORTED_PROBLEMS]:
        log.warning("%s: %s", what, problem)
    if len(problems) > _MAX_REPORTED_PROBLEMS:
        log.warning("%s: %d more problems like these", what, len(problems) - _MAX_REPORTED_PROBLEMS)
    return [accuracies for accuracies, _ in results]


def _score_keypoints(job: tuple[np.ndarray, Mapping[str, Any], int, int, tuple[float, ...], float]) -> Scored:
    """One frame: camera from keypoints, then its accuracies; no camera is a miss, not a problem."""
    keypoints, annotation, width, height, thresholds, min_confidence = job
    camera = estimate_camera(keypoints, width, height, min_confidence)
    if camera is None:
        return None, None
    try:
        return frame_accuracies(camera, annotation, thresholds, width, height), None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        return None, f"malformed annotation ({type(error).__name__}: {error})"


def evalai_score(
    keypoints_per_frame: Sequence[np.ndarray],
    annotations: Sequence[Mapping[str, Any]],
    width: int = 960,
    height: int = 540,
    threshold: float = CHALLENGE_THRESHOLD_PX,
    workers: int | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> dict[str, float | int]:
    """The challenge metric of predicted keypoints: a camera per frame, scored against its annotation.

    Keys: ``completeness``, ``accuracy@<threshold>``, ``evalai`` (= completeness × accuracy),
    ``frames``, ``missed``. A frame whose camera cannot be estimated, or whose annotation is
    malformed (logged), is missed: bad frames never end an evaluation.
    """
    if len(keypoints_per_frame) != len(annotations):
        raise ValueError(f"{len(keypoints_per_frame)} keypoint arrays for {len(annotations)} annotations")
    thresholds = (float(threshold),)
    jobs = [
        (np.asarray(kps, dtype=np.float64), annotation, width, height, thresholds, min_confidence)
        for kps, annotation in zip(keypoints_per_frame, annotations)
    ]
    per_frame = report_problems(map_frames(_score_keypoints, jobs, workers), "evalai_score")
    return summarise(per_frame, thresholds, product="evalai")
