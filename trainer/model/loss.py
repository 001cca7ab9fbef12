"""Heatmap targets and the loss, built on the model's device from keypoint coordinates.

The loader ships 57 × 3 numbers per frame instead of 58 heatmaps: at 720×405 that is the
difference between 684 bytes and 17 MB per sample crossing from worker to GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.data.keypoints.table import UNKNOWN, VISIBLE


def gaussian_targets(keypoints: Tensor, size: tuple[int, int], stride: int, sigma: float) -> Tensor:
    """Targets (B, 58, H, W): a Gaussian per visible point, zeros for the others, background last.

    `keypoints` is (B, 57, 3) in input pixels (x, y, state). Input pixel centres map to heatmap
    coordinates by (p + 0.5) / stride − 0.5, so a point keeps its place at any stride. The
    Gaussian is separable, so it is built as an outer product of two 1-D profiles without a
    Python loop over points.
    """
    height, width = size
    xy = (keypoints[..., :2].float() + 0.5) / stride - 0.5
    visible = (keypoints[..., 2] == VISIBLE).float()
    xy = torch.where(visible.bool().unsqueeze(-1), xy, torch.zeros_like(xy))  # NaN-free
    xs = torch.arange(width, device=keypoints.device, dtype=torch.float32)
    ys = torch.arange(height, device=keypoints.device, dtype=torch.float32)
    gx = torch.exp(-((xs - xy[..., 0:1]) ** 2) / (2 * sigma**2))  # (B, 57, W)
    gy = torch.exp(-((ys - xy[..., 1:2]) ** 2) / (2 * sigma**2))  # (B, 57, H)
    points = gy.unsqueeze(-1) * gx.unsqueeze(-2) * visible[..., None, None]
    background = 1.0 - points.amax(dim=1, keepdim=True)
    return torch.cat([points, background], dim=1)


def heatmap_loss(logits: Tensor, keypoints: Tensor, stride: int, sigma: float) -> Tensor:
    """MSE between channel-softmax probabilities and targets; unknown points are masked out.

    Invisible points are taught as all-zero maps (the model must learn they are not there);
    unknown ones (no homography to place them) carry no signal either way. Computed in float32
    even under AMP: softmax and small squared errors lose too much in half precision.
    """
    probabilities = torch.softmax(logits.float(), dim=1)
    targets = gaussian_targets(keypoints, tuple(logits.shape[-2:]), stride, sigma)
    known = (keypoints[..., 2] != UNKNOWN).float()
    weights = torch.cat([known, torch.ones_like(known[:, :1])], dim=1)  # background always counts
    per_channel = ((probabilities - targets) ** 2).mean(dim=(-2, -1))
    return (per_channel * weights).sum() / weights.sum().clamp_min(1.0)
