"""The argus model: network, Adam, heatmap loss, and a train step with AMP and accumulation.

argus 1.1 has no AMP and no gradient accumulation, so `train_step` is ours; everything else
(building the parts from params, the engine, callbacks, metrics) is argus's.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import argus
import torch
from argus.engine import State
from torch import Tensor, nn

from contract.codes import FAULT_CRASH_AT_STEP, FAULT_OOM_ABOVE, FAULT_RANK, OOM_TEXT
from trainer.model.heads import KeypointNet
from trainer.model.loss import heatmap_loss


class HeatmapLoss(nn.Module):
    def __init__(self, stride: int = 2, sigma: float = 3.0) -> None:
        super().__init__()
        self.stride = stride
        self.sigma = sigma

    def forward(self, logits: Tensor, keypoints: Tensor) -> Tensor:
        return heatmap_loss(logits, keypoints, self.stride, self.sigma)


def network_input(images: Tensor, device: torch.device) -> Tensor:
    """uint8 RGB (B, 3, H, W) as the network takes it: float in [0, 1] on ``device``.

    Training, validation and ``predict`` all go through here, so a trained model sees the same
    numbers at inference as it did in validation.
    """
    return images.to(device, non_blocking=True).float().div_(255.0)


class ToProbabilities:
    """Softmax over the 58 channels, in float32 whatever precision the forward pass used."""

    def __call__(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=1)


@dataclass
class Position:
    """Where training stands: what a checkpoint must restore to continue at the exact sample."""

    epoch: int = 0
    samples: int = 0  # samples of this epoch all ranks together consumed (the position in the sampler's order)
    step: int = 0  # optimizer steps since the start of the job
    pending: int = 0  # micro-batches accumulated since the last optimizer step


class HeatmapModel(argus.Model):
    nn_module = KeypointNet
    optimizer = torch.optim.Adam
    loss = HeatmapLoss
    prediction_transform = ToProbabilities

    def setup(self, amp: bool, accumulation: int, rank: int = 0, world_size: int = 1) -> None:
        """Training settings argus does not know: AMP, gradient accumulation, and the ranks."""
        self.amp = amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.accumulation = accumulation
        self.position = Position()
        self.epoch_end = 0  # the sample position after the epoch's last batch; set per epoch
        self.rank, self.world_size = rank, world_size
        # Training's forward and backward go through DistributedDataParallel when there are ranks;
        # nn_module stays the plain network, so checkpoints, weights and validation never see it.
        self.ddp: nn.Module | None = None

    def _inputs(self, batch: dict) -> tuple[Tensor, Tensor]:
        return network_input(batch["image"], self.device), batch["keypoints"].to(self.device, non_blocking=True)

    def _inject_faults(self, images: Tensor) -> None:
        """Test-only faults of the runner contract (DESIGN §4); inert unless the variable is set."""
        only = os.environ.get(FAULT_RANK)
        if only and int(only) != self.rank:
            return
        limit = os.environ.get(FAULT_OOM_ABOVE)
        if limit:
            b, _, h, w = images.shape
            load = b * h * w / (2 if self.nn_module.backbone.stage2.activation_checkpointing else 1)
            if load > int(limit):
                raise torch.cuda.OutOfMemoryError(f"{OOM_TEXT} (injected: {load:g} > {limit})")
        crash = os.environ.get(FAULT_CRASH_AT_STEP)
        if crash and self.position.step == int(crash):
            raise RuntimeError(f"injected crash at step {crash}")

    def at_step_boundary(self) -> bool:
        return self.position.pending == 0

    def train_step(self, batch: dict, state: State) -> dict:
        self.train()
        images, keypoints = self._inputs(batch)
        self._inject_faults(images)
        position = self.position
        position.pending += 1
        position.samples += images.shape[0] * self.world_size
        steps = position.pending >= self.accumulation or position.samples >= self.epoch_end
        network = self.ddp if self.ddp is not None else self.nn_module
        # Ranks exchange gradients only on the micro-batch that ends an optimizer step.
        no_sync = network.no_sync() if self.ddp is not None and not steps else contextlib.nullcontext()
        with no_sync:
            with torch.autocast(self.device.type, enabled=self.amp):
                logits = network(images)
            loss = self.loss(logits, keypoints)
            self.scaler.scale(loss / self.accumulation).backward()
        if steps:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            position.step += 1
            position.pending = 0
        return {"prediction": None, "target": keypoints, "loss": loss.item(), "batch_size": images.shape[0]}

    def val_step(self, batch: dict, state: State) -> dict:
        self.eval()
        with torch.no_grad():
            images, keypoints = self._inputs(batch)
            with torch.autocast(self.device.type, enabled=self.amp):
                logits = self.nn_module(images)
            loss = self.loss(logits, keypoints)
        return {
            "prediction": self.prediction_transform(logits),
            "target": keypoints,
            "loss": loss.item(),
            "index": batch["index"],
        }
