"""The epoch metrics as argus Metrics: the loss of each phase, and validation's keypoint and
challenge scores.

Validation predictions are gathered over the whole epoch and scored once at its end, because
the EvalAI score needs a camera per frame (estimated in a process pool) and the frame's
annotation, not per-batch averages.
"""

from __future__ import annotations

import math

import numpy as np
from argus.engine import State
from argus.metrics.metric import Metric

from contract.config import AttemptConfig
from trainer.data.loader import KeypointDataset
from trainer.data.soccernet import NATIVE_SIZE
from trainer.data.transforms import scale_keypoints
from trainer.evaluation.challenge import evalai_score
from trainer.evaluation.heatmaps import keypoints_from_heatmaps
from trainer.evaluation.keypoint_metrics import keypoint_metrics


class EpochLoss(Metric):
    """argus's Loss (stored as `<phase>_loss`), except that an epoch with no batches, a resume
    at its very end, reports NaN instead of raising."""

    name = "epoch_loss"

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, step_output: dict) -> None:
        self.total += step_output["loss"]
        self.count += 1

    def compute(self) -> float:
        return self.total / self.count if self.count else math.nan

    def epoch_complete(self, state: State) -> None:
        prefix = f"{state.phase}_" if state.phase else ""
        state.metrics[prefix + "loss"] = self.compute()


class ValidationMetrics(Metric):
    """Keypoint accuracy and the challenge's EvalAI score of a validation epoch."""

    name = "evalai"
    better = "max"

    def __init__(self, dataset: KeypointDataset, config: AttemptConfig) -> None:
        super().__init__()
        self.dataset = dataset
        self.stride = config.train.stride
        self.input_size = tuple(config.rung.input_size)
        self.predicted: dict[int, np.ndarray] = {}
        self.targets: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        self.predicted, self.targets = {}, {}

    def update(self, step_output: dict) -> None:
        predicted = keypoints_from_heatmaps(step_output["prediction"], self.stride, self.input_size, NATIVE_SIZE)
        targets = step_output["target"].cpu().numpy()
        for row, index in enumerate(step_output["index"].tolist()):
            self.predicted[index] = predicted[row]
            self.targets[index] = scale_keypoints(targets[row], self.input_size, NATIVE_SIZE)

    def compute(self) -> dict[str, float]:
        indices = sorted(self.predicted)
        predicted = np.stack([self.predicted[i] for i in indices])
        targets = np.stack([self.targets[i] for i in indices])
        scores = dict(keypoint_metrics(predicted, targets))
        annotations = [self.dataset.split.frames[i].annotation for i in indices]
        challenge = evalai_score(list(predicted), annotations, *NATIVE_SIZE)
        scores.update({k: challenge[k] for k in ("evalai", "completeness", "accuracy@5")})
        return scores

    def epoch_complete(self, state: State) -> None:
        prefix = f"{state.phase}_" if state.phase else ""
        for key, value in self.compute().items():
            state.metrics[prefix + key] = float(value)
