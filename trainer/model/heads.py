"""The keypoint heatmap network: HRNetV2 backbone plus a stride-2 head over all branches.

Pretrained backbone weights are loaded by ``pretrained``; the whole network's trained weights by
``trainer.inference.weights``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.model.hrnet import CONFIGS, HRNet, _bn

NUM_OUTPUTS = NUM_KEYPOINTS + 1  # the keypoints + background


class HeatmapHead(nn.Module):
    """HRNetV2's representation head (all branches upsampled and concatenated), then a x2 step.

    The extra upsampling brings the output to stride 2, which the heatmap targets use: at
    stride 4 the keypoints of a distant goal would merge.
    """

    def __init__(self, in_channels: tuple[int, ...], num_outputs: int = NUM_OUTPUTS, mid_channels: int = 64) -> None:
        super().__init__()
        total = sum(in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(total, mid_channels, 1, bias=False), _bn(mid_channels), nn.ReLU(inplace=True))
        self.refine = nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=False), _bn(mid_channels), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Conv2d(mid_channels, num_outputs, 1)

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
