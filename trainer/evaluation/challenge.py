"""The challenge metric: EvalAI = completeness × JaC@5.

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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from SoccerNet.Evaluation.utils_calibration import get_polylines, mirror_labels, scale_points

from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE, estimate_camera
from trainer.parallel import map_frames

log = logging.getLogger(__name__)

CHALLENGE_THRESHOLD_PX = 5.0
POLYLINE_SAMPLING = 0.9
"""Metres between projected samples of each pitch line, as the challenge evaluation uses."""
_MAX_REPORTED_PROBLEMS = 10

Scored = tuple[dict[float, float] | None, str | None]
"""A frame's accuracies by threshold (None: no camera) and why it could not be scored, if it could not.

Workers report problems instead of logging them: a pool process's log goes nowhere by default."""


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
