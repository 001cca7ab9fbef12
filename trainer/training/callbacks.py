"""argus callbacks whose state survives a checkpoint, plus progress reporting.

argus's EarlyStopping and ReduceLROnPlateau reset themselves when an engine starts; a resumed
run must instead continue their counters, so these subclasses take a pending state and apply
it after their own start.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from argus.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from argus.engine import State

from contract.events import PROGRESS, EventLog

log = logging.getLogger("trainer")


class ResumableEarlyStopping(EarlyStopping):
    """Early stopping whose best value and patience counter continue across a resume."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": float(self.best_value), "wait": int(self.wait)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = dict(state)

    def start(self, state: State) -> None:
        super().start(state)
        if self._pending is not None:
            self.best_value, self.wait = self._pending["best_value"], self._pending["wait"]
            self._pending = None


class ResumableReduceLROnPlateau(ReduceLROnPlateau):
    """LR on plateau whose scheduler (best value, bad epochs, cooldown) continues across a resume."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = dict(state) or None

    def start(self, state: State) -> None:
        super().start(state)
        if self._pending is not None:
            self.scheduler.load_state_dict(self._pending)
            self._pending = None


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress(Callback):
    """A progress line in trainer.log and a `progress` event every few seconds.

    samples/s is measured over the interval since the last report, so a slow start-up
    (worker spawn, cudnn autotune) does not drag the figure for the rest of the epoch.
    """

    def __init__(self, events: EventLog, every_seconds: float, max_epochs: int, epoch_samples: int,
                 samples_per_step: int) -> None:
        self.events = events
        self.steps_per_epoch = math.ceil(epoch_samples / samples_per_step)
        self.every_seconds = every_seconds
        self.max_epochs = max_epochs
        self.epoch_samples = epoch_samples
        self.samples_per_s = 0.0
        self._last_time = 0.0
        self._last_samples = 0
        self._loss_sum = 0.0
        self._loss_count = 0

    def epoch_start(self, state: State) -> None:
        self._last_time = time.monotonic()
        self._last_samples = state.model.position.samples
        self._loss_sum, self._loss_count = 0.0, 0

    def iteration_complete(self, state: State) -> None:
        self._loss_sum += state.step_output["loss"]
        self._loss_count += 1
        now = time.monotonic()
        position = state.model.position
        if now - self._last_time < self.every_seconds and position.samples < state.model.epoch_end:
            return
        self.samples_per_s = (position.samples - self._last_samples) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_samples = now, position.samples
        remaining = (self.max_epochs - position.epoch) * self.epoch_samples - position.samples
        eta = remaining / self.samples_per_s if self.samples_per_s > 0 else math.inf
        loss = self._loss_sum / max(self._loss_count, 1)
        done = position.samples / max(self.epoch_samples, 1)
        bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
        log.info(
            "epoch %d/%d [%s] %d/%d samples  loss %.5f  %.1f samples/s  ETA %s",
            position.epoch + 1, self.max_epochs, bar, position.samples, self.epoch_samples, loss,
            self.samples_per_s, _duration(eta),
        )
        self.events.emit(
            PROGRESS, epoch=position.epoch, step=position.step, steps_per_epoch=self.steps_per_epoch,
            samples=position.samples,
            epoch_samples=self.epoch_samples, loss=loss, samples_per_s=self.samples_per_s,
            eta_s=eta if math.isfinite(eta) else None,
        )
