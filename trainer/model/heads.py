"""The keypoint heatmap network: HRNetV2 backbone plus a stride-2 head over all branches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class LoadReport:
    """What a pretrained file did and did not provide; reported, never fatal."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


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

    def load_pretrained_backbone(self, path: str | Path) -> LoadReport:
        """Load ImageNet backbone weights by name from a local file, keeping what fits."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        own = self.backbone.state_dict()
        report = LoadReport()
        usable = {}
        for key, value in state.items():
            key = key.removeprefix("module.").removeprefix("backbone.")
            if key not in own:
                report.unexpected.append(key)
            elif own[key].shape != value.shape:
                report.mismatched.append(key)
            else:
                usable[key] = value
        report.missing = [k for k in own if k not in usable]
        self.backbone.load_state_dict(usable, strict=False)
        report.loaded = len(usable)
        return report
