"""Keypoint accuracy of predicted points against derived targets: L2 error, PCK, precision, recall."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE
from trainer.evaluation.challenge import CHALLENGE_THRESHOLD_PX
from trainer.evaluation.heatmaps import as_numpy

PCK_THRESHOLDS_PX = (2.0, 5.0, 10.0)


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
    pred, target = as_numpy(predicted), as_numpy(targets)
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
