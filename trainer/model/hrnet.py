"""HRNetV2 backbone (Wang et al., "Deep High-Resolution Representation Learning", 2019).

Module names follow the official HRNet code (conv1, layer1, transition1, stage2, ...) so that
ImageNet-pretrained state dicts of that lineage load by name. Odd input sizes such as 720×405
are supported: every fusion resamples to the exact size of the target branch instead of
assuming powers of two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class StageConfig:
    modules: int
    blocks: tuple[int, ...]
    channels: tuple[int, ...]


@dataclass(frozen=True)
class HRNetConfig:
    stem_blocks: int
    stem_channels: int
    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig


def _config(stem: tuple[int, int], blocks: int, widths: tuple[int, int, int, int], modules: tuple[int, int, int]) -> HRNetConfig:
    w = widths
    return HRNetConfig(
        stem_blocks=stem[0],
        stem_channels=stem[1],
        stage2=StageConfig(modules[0], (blocks,) * 2, w[:2]),
        stage3=StageConfig(modules[1], (blocks,) * 3, w[:3]),
        stage4=StageConfig(modules[2], (blocks,) * 4, w),
    )


# The configurations of the HRNet paper (and its official model zoo).
CONFIGS: dict[str, HRNetConfig] = {
    "hrnet_w18_small": _config((1, 32), 2, (16, 32, 64, 128), (1, 1, 1)),
    "hrnet_w18": _config((4, 64), 4, (18, 36, 72, 144), (1, 4, 3)),
    "hrnet_w32": _config((4, 64), 4, (32, 64, 128, 256), (1, 4, 3)),
    "hrnet_w48": _config((4, 64), 4, (48, 96, 192, 384), (1, 4, 3)),
}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, bias=False), _bn(planes * block.expansion)
        )
    layers = [block(inplanes, planes, 1, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches at several resolutions, then every branch fused into every other."""

    def __init__(self, channels: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(_make_layer(BasicBlock, c, c, b) for c, b in zip(channels, blocks))
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = channels[i] if last else channels[j]
                        step = [nn.Conv2d(channels[j], out, 3, 2, 1, bias=False), _bn(out)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *xs: Tensor) -> tuple[Tensor, ...]:
        xs = tuple(branch(x) for branch, x in zip(self.branches, xs))
        fused = []
        for i, row in enumerate(self.fuse_layers):
            target = xs[i].shape[-2:]
            total = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                y = layer(xs[j])
                if j > i:
                    y = F.interpolate(y, size=target, mode="bilinear", align_corners=False)
                total = total + y
            fused.append(self.relu(total))
        return tuple(fused)


@contextmanager
def _frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """During a checkpoint's recomputation, keep BatchNorm running stats from updating twice.

    Without this, activation checkpointing would change the model's running statistics, and
    the OOM ladder's checkpointing rung would not give the same results as the rung above it.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class Stage(nn.ModuleList):
    """A sequence of HighResolutionModules, optionally under activation checkpointing.

    A ModuleList so that parameter names match the official checkpoints (stage2.0.branches...).
    """

    def __init__(self, config: StageConfig) -> None:
        super().__init__(HighResolutionModule(config.channels, config.blocks) for _ in range(config.modules))
        self.activation_checkpointing = False

    def forward(self, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        for module in self:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                xs = checkpoint(
                    module, *xs, use_reentrant=False,
                    context_fn=lambda m=module: (nullcontext(), _frozen_batchnorm_stats(m)),
                )
            else:
                xs = module(*xs)
        return xs


def _transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
    """Adapt channels of existing branches and spawn the new lower-resolution branch."""
    layers = nn.ModuleList()
    for i, channels in enumerate(current):
        if i < len(previous):
            if previous[i] != channels:
                layers.append(nn.Sequential(
                    nn.Conv2d(previous[i], channels, 3, 1, 1, bias=False), _bn(channels), nn.ReLU(inplace=True)
                ))
            else:
                layers.append(nn.Identity())
        else:
            steps = []
            for k in range(i + 1 - len(previous)):
                out = channels if k == i - len(previous) else previous[-1]
                steps.append(nn.Sequential(
                    nn.Conv2d(previous[-1], out, 3, 2, 1, bias=False), _bn(out), nn.ReLU(inplace=True)
                ))
            layers.append(nn.Sequential(*steps))
    return layers


class HRNet(nn.Module):
    """HRNetV2 backbone: returns the four branches (strides 4, 8, 16, 32)."""

    def __init__(self, config: HRNetConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, 64, config.stem_channels, config.stem_blocks)
        stem_out = config.stem_channels * Bottleneck.expansion
        self.transition1 = _transition([stem_out], config.stage2.channels)
        self.stage2 = Stage(config.stage2)
        self.transition2 = _transition(config.stage2.channels, config.stage3.channels)
        self.stage3 = Stage(config.stage3)
        self.transition3 = _transition(config.stage3.channels, config.stage4.channels)
        self.stage4 = Stage(config.stage4)
        self.out_channels: tuple[int, ...] = config.stage4.channels

    def set_activation_checkpointing(self, enabled: bool) -> None:
        for stage in (self.stage2, self.stage3, self.stage4):
            stage.activation_checkpointing = enabled

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs: tuple[Tensor, ...] = tuple(t(x) for t in self.transition1)
        xs = self.stage2(xs)
        xs = self._transition(self.transition2, xs)
        xs = self.stage3(xs)
        xs = self._transition(self.transition3, xs)
        return self.stage4(xs)

    @staticmethod
    def _transition(layers: nn.ModuleList, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Existing branches map one to one; the new branch grows from the lowest resolution."""
        return tuple(layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(layers))
