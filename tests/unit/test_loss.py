"""Heatmap targets and the masked MSE loss."""

from __future__ import annotations

import math

import torch

from trainer.model.loss import gaussian_targets, heatmap_loss


def keypoints(*points: tuple[float, float, float]) -> torch.Tensor:
    """A (1, 57, 3) tensor: the given points first, the rest unknown."""
    kps = torch.full((1, 57, 3), float("nan"))
    kps[..., 2] = -1
    for i, p in enumerate(points):
        kps[0, i] = torch.tensor(p)
    return kps


def test_peak_sits_on_the_point_at_stride_2() -> None:
    # input pixel 41 maps to heatmap (41 + 0.5) / 2 - 0.5 = 20.25; input pixel 21 to 10.25
    targets = gaussian_targets(keypoints((41.0, 21.0, 1.0)), (32, 48), stride=2, sigma=3.0)
    peak = targets[0, 0]
    y, x = divmod(int(peak.argmax()), 48)
    assert (x, y) == (20, 10)
    assert math.isclose(float(peak[10, 20]), math.exp(-(0.25**2 + 0.25**2) / 18), rel_tol=1e-5)


def test_invisible_and_unknown_are_zero_and_background_is_complement() -> None:
    kps = keypoints((10.0, 10.0, 1.0), (5.0, 5.0, 0.0))
    targets = gaussian_targets(kps, (16, 16), stride=2, sigma=2.0)
    assert targets.shape == (1, 58, 16, 16)
    assert targets[0, 1].abs().max() == 0  # invisible
    assert targets[0, 2:57].abs().max() == 0  # unknown
    assert torch.allclose(targets[0, 57], 1 - targets[0, :57].amax(dim=0))


def test_unknown_points_do_not_change_the_loss() -> None:
    kps = keypoints((10.0, 10.0, 1.0), (5.0, 5.0, 0.0))
    logits = torch.randn(1, 58, 16, 16)
    base = heatmap_loss(logits, kps, 2, 2.0)
    kps_unknown_moved = kps.clone()
    kps_unknown_moved[0, 5, :2] = torch.tensor([3.0, 3.0])
    assert torch.equal(heatmap_loss(logits, kps_unknown_moved, 2, 2.0), base)


def test_matching_prediction_scores_better_than_noise() -> None:
    kps = keypoints((10.0, 12.0, 1.0), (20.0, 4.0, 1.0), (3.0, 3.0, 0.0))
    targets = gaussian_targets(kps, (16, 16), stride=2, sigma=2.0)
    good = torch.log(targets + 1e-4)
    noise = torch.randn(1, 58, 16, 16)
    assert heatmap_loss(good, kps, 2, 2.0) < 0.5 * heatmap_loss(noise, kps, 2, 2.0)


def test_gradient_flows_and_is_finite_with_nan_coordinates() -> None:
    kps = keypoints((10.0, 10.0, 1.0))  # the other 56 rows hold NaN coordinates
    logits = torch.randn(1, 58, 16, 16, requires_grad=True)
    heatmap_loss(logits, kps, 2, 2.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
