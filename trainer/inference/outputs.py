"""What ``predict`` writes per frame, and the camera step that decides part of it.

In the output folder, per frame ``NAME``:

- ``NAME.keypoints.json``: one line, ``{"frame", "source", "index", "width", "height",
  "keypoints": 57 × [x, y, confidence] (null if not finite), "camera": "camera_NAME.json" or null,
  "no_camera": why not, or null}``. Coordinates are pixels of the frame, at full precision. It is
  the keypoints-file line ``calibrate`` reads: ``cat DIR/*.keypoints.json`` is a keypoints file.
- ``camera_NAME.json``: the camera in SoccerNet's form, only when there is one (a stale one from
  an earlier run is removed), which is the name ``score`` pairs with the annotation ``NAME.json``.

The camera comes from the same ``estimate_camera`` call with the same confidence bar that
validation's EvalAI score makes, so ``predict`` then ``score`` reproduces validation's figure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from contract.files import atomic_write
from trainer.evaluation.camera import MIN_POINTS, estimate_camera
from trainer.evaluation.scoring import prediction_name

CameraJob = tuple[np.ndarray, int, int, float]
"""(keypoints (57, 3), frame width, frame height, min confidence): picklable, for pool workers."""


def keypoints_name(frame: str) -> str:
    return f"{frame}.keypoints.json"


def confident(keypoints: np.ndarray, min_confidence: float) -> int:
    """How many keypoints a camera may use: finite, with a confidence of at least ``min_confidence``."""
    finite = np.isfinite(keypoints[:, :2]).all(axis=1)
    return int((finite & (np.nan_to_num(keypoints[:, 2], nan=-np.inf) >= min_confidence)).sum())


def no_camera_reason(keypoints: np.ndarray, min_confidence: float) -> str:
    """Why ``estimate_camera`` gave none: too few confident points, or none of its candidates held."""
    count = confident(keypoints, min_confidence)
    if count < MIN_POINTS:
        return f"{count} keypoints reach confidence {min_confidence:g}; a camera needs {MIN_POINTS}"
    return (f"no plausible camera from {count} keypoints with confidence {min_confidence:g} or more "
            f"(degenerate, or an implausible focal length, position or fit)")


def camera_for(job: CameraJob) -> tuple[dict | None, str | None]:
    """One frame's camera, or None and the reason; module-level so that pool workers can unpickle it."""
    keypoints, width, height, min_confidence = job
    camera = estimate_camera(keypoints, width, height, min_confidence)
    return (camera, None) if camera is not None else (None, no_camera_reason(keypoints, min_confidence))


def keypoints_json(keypoints: np.ndarray) -> list[list[float] | None]:
    """57 × [x, y, confidence], null if not finite; at full precision, so ``calibrate`` gives the same camera."""
    return [[float(x), float(y), float(c)] if all(map(math.isfinite, (x, y, c))) else None for x, y, c in keypoints]


def write_frame(out: Path, frame: str, record: dict, keypoints: np.ndarray, camera: dict | None,
                reason: str | None) -> None:
    """Both files of one frame, each written whole; ``record`` carries the frame's source, index and size."""
    camera_path = out / prediction_name(frame)
    document = {"frame": frame, **record, "keypoints": keypoints_json(keypoints),
                "camera": camera_path.name if camera is not None else None, "no_camera": reason}
    atomic_write(out / keypoints_name(frame), (json.dumps(document) + "\n").encode())
    if camera is not None:
        atomic_write(camera_path, json.dumps(camera, indent=1).encode())
    else:
        camera_path.unlink(missing_ok=True)
