"""Challenge scoring of camera folders, and cameras for a keypoints file: the library behind the
``calibrate`` and ``score`` commands of ``python -m trainer``.

A person can go annotations → keypoints (``python -m trainer keypoints``) → cameras
(``calibrate``) → score (``score``), and a model's predicted keypoints take the same last two
steps. Predictions are SoccerNet's ``camera_NNNNN.json`` (``Camera.to_json_parameters`` form)
beside annotations ``NNNNN.json``, as SoccerNet 0.2.0's ``CameraCalibration.evaluate`` reads them
from its zips: an annotation without a prediction is a missed frame. Unlike that evaluator,
nothing here stops at a bad file: a corrupt annotation is left out with a warning (it cannot be
scored either way), a corrupt prediction counts as missed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from contract.files import atomic_write
from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE, estimate_camera
from trainer.evaluation.challenge import Scored, frame_accuracies, report_problems, summarise
from trainer.parallel import map_frames

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (5.0, 10.0, 20.0)
_ANNOTATION_NAME = re.compile(r"^(\d+)\.json$")
_FRAME_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
"""Frame names become file names; anything else could write outside the output folder."""


def prediction_name(frame: str) -> str:
    """The challenge's name for a frame's camera: ``camera_`` + the annotation's file name."""
    return f"camera_{frame}.json"


def _annotations(gt_dir: Path) -> Iterator[tuple[str, dict]]:
    """(frame, annotation) for each readable ``NNNNN.json``, in name order; others are warned about and left out."""
    for path in sorted(gt_dir.iterdir()):
        match = _ANNOTATION_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        try:
            annotation = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning("annotation %s left out: %s", path, error)
            continue
        if not isinstance(annotation, dict):
            log.warning("annotation %s left out: not a JSON object", path)
            continue
        yield match.group(1), annotation


def _score_prediction(job: tuple[str, dict, int, int, tuple[float, ...]]) -> Scored:
    """One frame's accuracies from its prediction file; a missing or corrupt one is a miss."""
    path, annotation, width, height, thresholds = job
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as handle:
            camera = json.load(handle)
        return frame_accuracies(camera, annotation, thresholds, width, height), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"prediction {path} unreadable, counted as missed: {error}"
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        return None, f"prediction {path} or its annotation malformed, counted as missed: {error!r}"


def score_folder(
    pred_dir: Path | str,
    gt_dir: Path | str,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    width: int = 960,
    height: int = 540,
    workers: int | None = None,
) -> dict[str, float | int]:
    """The challenge's scores of ``pred_dir``'s cameras against ``gt_dir``'s annotations.

    Keys: ``completeness``, ``accuracy@t`` for each threshold, ``combined`` (completeness ×
    accuracy at the first threshold, the challenge's 5 px by default), ``frames`` (readable
    annotations) and ``missed`` (frames without a usable prediction).
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    thresholds = tuple(float(t) for t in thresholds)
    jobs = [
        (str(pred_dir / prediction_name(frame)), annotation, width, height, thresholds)
        for frame, annotation in _annotations(gt_dir)
    ]
    per_frame = report_problems(map_frames(_score_prediction, jobs, workers), "score")
    return summarise(per_frame, thresholds, product="combined")


def parse_keypoints_line(line: str) -> tuple[str, np.ndarray]:
    """(frame, (57, 3) keypoints) from one JSON line; raises ValueError with the reason when malformed.

    Each of the 57 entries is [x, y], [x, y, confidence] or null; [x, y] means certain (1.0),
    null is a point not found (NaN, never used).
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    frame, entries = record.get("frame"), record.get("keypoints")
    if not isinstance(frame, str) or not _FRAME_NAME.match(frame):
        raise ValueError(f"frame must be a name of letters, digits, '_' or '-', not {frame!r}")
    if not isinstance(entries, list) or len(entries) != NUM_KEYPOINTS:
        raise ValueError(f"keypoints must be a list of {NUM_KEYPOINTS} entries")
    keypoints = np.full((NUM_KEYPOINTS, 3), np.nan)
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        if (
            not isinstance(entry, list)
            or len(entry) not in (2, 3)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)
        ):
            raise ValueError(f"keypoint {index} must be [x, y], [x, y, confidence] or null, not {entry!r}")
        keypoints[index] = [*entry, 1.0] if len(entry) == 2 else entry
    return frame, keypoints


def _estimate(job: tuple[np.ndarray, int, int, float]) -> dict | None:
    """One frame's camera; module-level so that pool workers can unpickle it."""
    keypoints, width, height, min_confidence = job
    return estimate_camera(keypoints, width, height, min_confidence)


def calibrate_file(
    keypoints_path: Path | str,
    out_dir: Path | str,
    width: int = 960,
    height: int = 540,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    workers: int | None = None,
) -> dict[str, int]:
    """A camera file per frame of a keypoints JSON-lines file that has a plausible camera.

    A frame without one gets no file, and loses a stale one from an earlier run, so the folder
    always scores what this run estimated. Returns counts: frames, cameras, without_camera,
    malformed (lines left out, each warned about).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames: list[tuple[str, np.ndarray]] = []
    malformed = 0
    with Path(keypoints_path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                frames.append(parse_keypoints_line(line))
            except ValueError as error:
                malformed += 1
                log.warning("%s line %d left out: %s", keypoints_path, number, error)
    cameras = map_frames(_estimate, [(kps, width, height, min_confidence) for _, kps in frames], workers)
    for (frame, _), camera in zip(frames, cameras):
        path = out_dir / prediction_name(frame)
        if camera is not None:  # written whole or not at all, so a kill leaves no half camera
            atomic_write(path, json.dumps(camera, indent=1).encode())
        else:
            path.unlink(missing_ok=True)
    written = sum(camera is not None for camera in cameras)
    return {"frames": len(frames), "cameras": written, "without_camera": len(frames) - written, "malformed": malformed}
