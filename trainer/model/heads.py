"""The keypoint heatmap network: HRNetV2 backbone plus a stride-2 head over all branches.

Pretrained backbone weights are loaded by ``pretrained``; the whole network's trained weights by
``trainer.inference.weights``. Neither touches the head's initial biases, which only an untrained
head uses (a resumed checkpoint overrides every tensor).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.model.hrnet import CONFIGS, HRNet, _bn

NUM_OUTPUTS = NUM_KEYPOINTS + 1  # the keypoints + background

BACKGROUND_PRIOR = 0.99
"""Share of heatmap cells whose target is background, which the untrained head predicts everywhere.

A Gaussian of sigma 3 covers 2πσ² ≈ 57 heatmap cells, so a frame with about 18 visible points
leaves 0.987 of the cells to background at 720×405 and 0.992 at 960×540 (the recipe's sizes;
0.92 at the 256×144 demo, where the same prior starts learning as well, see bench/learning.py).
"""


def prior_logits(num_outputs: int = NUM_OUTPUTS, background_prior: float = BACKGROUND_PRIOR) -> Tensor:
    """Classifier biases whose softmax is the targets' prior: ``background_prior`` on the last
    channel, the rest shared evenly by the keypoint channels.

    PyTorch's default biases give every channel about 1/58, background included, while the targets
    are background almost everywhere: the network then spends its first couple of hundred steps
    pushing background up everywhere before any keypoint can peak (bench/learning.py: a first
    detection at step 205 instead of 50). The prior initialisation of dense detectors, as in the
    focal-loss paper, answers the same start.
    """
    keypoint = (1.0 - background_prior) / (num_outputs - 1)
    bias = torch.full((num_outputs,), math.log(keypoint))
    bias[-1] = math.log(background_prior)
    return bias


class HeatmapHead(nn.Module):
    """HRNetV2's representation head (all branches upsampled and concatenated), then a x2 step.

    The extra upsampling brings the output to stride 2, which the heatmap targets use: at
    stride 4 the keypoints of a distant goal would merge. The classifier starts at the targets'
    prior (``prior_logits``); its weights keep PyTorch's default scale, small enough that the
    initial softmax stays near the prior and large enough that the backbone's first updates reach
    the logits (with weights of std 0.001, an 8-frame overfit's loss stalled).
    """

    def __init__(self, in_channels: tuple[int, ...], num_outputs: int = NUM_OUTPUTS, mid_channels: int = 64) -> None:
        super().__init__()
        total = sum(in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(total, mid_channels, 1, bias=False), _bn(mid_channels), nn.ReLU(inplace=True))
        self.refine = nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=False), _bn(mid_channels), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Conv2d(mid_channels, num_outputs, 1)
        with torch.no_grad():
            self.classifier.bias.copy_(prior_logits(num_outputs))

    def forward(self, xs: tuple[Tensor, ...], output_size: tuple[int, int]) -> Tensor:
        size = xs[0].shape[-2:]
        ups = [xs[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]]
        y = self.fuse(torch.cat(ups, dim=1))
        y = F.interpolate(y, size=output_size, mode="bilinear", align_corners=False)
        return self.classifier(self.refine(y))


class KeypointNet(nn.Module):
    """Image (B, 3, H, W) to logits (B, 58, ceil(H/2), ceil(W/2)); softmax over channels."""

    def __init__(self, arch: str, num_outputs: int = NUM_OUTPUTS) -> None:
        super().__init__()
        if arch not in CONFIGS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(CONFIGS)}")
        self.backbone = HRNet(CONFIGS[arch])
        self.head = HeatmapHead(self.backbone.out_channels, num_outputs)

    def set_activation_checkpointing(self, enabled: bool) -> None:
        self.backbone.set_activation_checkpointing(enabled)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return self.head(self.backbone(x), (math.ceil(h / 2), math.ceil(w / 2)))
