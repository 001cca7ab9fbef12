"""The head's initial softmax sits at the targets' prior, background almost everywhere, so that an
untrained network starts where the targets are and learns peaks from its first steps
(bench/learning.py measures how much sooner detections come than with PyTorch's default)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor

from trainer.data.keypoints.table import NUM_KEYPOINTS, VISIBLE
from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE
from trainer.evaluation.heatmaps import keypoints_from_heatmaps
from trainer.model.heads import BACKGROUND_PRIOR, NUM_OUTPUTS, KeypointNet, prior_logits
from trainer.model.loss import gaussian_targets, heatmap_loss

KEYPOINT_PRIOR = (1.0 - BACKGROUND_PRIOR) / NUM_KEYPOINTS


def target_background_share(width: int, height: int, visible: int) -> float:
    """Mean background target of frames with ``visible`` points at random places (stride 2, sigma 3)."""
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.zeros(8, NUM_KEYPOINTS, 3)
    keypoints[:, :visible, 0] = torch.rand(8, visible, generator=generator) * (width - 1)
    keypoints[:, :visible, 1] = torch.rand(8, visible, generator=generator) * (height - 1)
    keypoints[:, :visible, 2] = VISIBLE
    targets = gaussian_targets(keypoints, (math.ceil(height / 2), math.ceil(width / 2)), stride=2, sigma=3.0)
    return targets[:, -1].mean().item()


@pytest.mark.parametrize("size", [(720, 405), (960, 540)])
def test_prior_is_the_targets_background_share_at_the_recipes_sizes(size: tuple[int, int]) -> None:
    assert abs(target_background_share(*size, visible=18) - BACKGROUND_PRIOR) < 0.005


def test_prior_logits_give_the_prior() -> None:
    probabilities = torch.softmax(prior_logits(), dim=0)
    assert probabilities.shape == (NUM_OUTPUTS,)
    assert probabilities[-1].item() == pytest.approx(BACKGROUND_PRIOR, abs=1e-6)
    assert torch.allclose(probabilities[:-1], torch.full((NUM_KEYPOINTS,), KEYPOINT_PRIOR))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_initial_softmax_is_the_prior_at_every_cell(mode: str) -> None:
    """Not PyTorch's default, where every channel, background included, gets about 1/58."""
    torch.manual_seed(0)
    net = getattr(KeypointNet("hrnet_w18_small"), mode)()
    with torch.no_grad():
        probabilities = torch.softmax(net(torch.rand(2, 3, 72, 128, generator=torch.Generator().manual_seed(0))), 1)
    background = probabilities[:, -1]
    assert abs(background.mean().item() - BACKGROUND_PRIOR) < 0.005
    assert background.min().item() > 0.95
    per_channel = probabilities[:, :-1].mean(dim=(0, 2, 3)) / KEYPOINT_PRIOR
    assert per_channel.min().item() > 1 / 3 and per_channel.max().item() < 3
    assert probabilities[:, :-1].max().item() < 0.01  # far below a detection's confidence


def marker_frames(width: int = 96, height: int = 64) -> tuple[Tensor, Tensor]:
    """Two frames, each with six 7×7 squares of distinct colours at seeded places: keypoint k is
    the square of colour k; the other keypoints are invisible (taught as all-zero maps)."""
    colours = torch.tensor([(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0)], dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    images = torch.zeros(2, 3, height, width)
    keypoints = torch.zeros(2, NUM_KEYPOINTS, 3)
    for frame in range(2):
        for k, colour in enumerate(colours):
            x = int(torch.randint(4, width - 4, (1,), generator=generator))
            y = int(torch.randint(4, height - 4, (1,), generator=generator))
            images[frame, :, y - 3:y + 4, x - 3:x + 4] = colour[:, None, None]
            keypoints[frame, k] = torch.tensor([x, y, VISIBLE])
    return images, keypoints


def detections(logits: Tensor, keypoints: Tensor) -> tuple[int, int]:
    """(confident keypoints within 2 px of their visible target, confident invisible keypoints)."""
    height, width = (2 * n for n in logits.shape[-2:])
    predicted = keypoints_from_heatmaps(torch.softmax(logits, 1), 2, (width, height), (width, height))
    confident = predicted[..., 2] >= DEFAULT_MIN_CONFIDENCE
    visible = keypoints[..., 2].numpy() == VISIBLE
    close = np.linalg.norm(predicted[..., :2] - keypoints[..., :2].numpy(), axis=-1) < 2.0
    return int((confident & visible & close).sum()), int((confident & ~visible).sum())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """At this size a second thread gains little, and on a busy machine its waits cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_short_overfit_detects_with_the_prior_init() -> None:
    """40 steps of the recipe's loss and optimizer (Adam, lr 1e-3) on two marker frames bring
    confident, correct peaks, where the untrained network has none. Scored on the training forward
    (batch statistics): eval mode's running statistics are still warming up after 40 steps."""
    torch.manual_seed(1)
    net = KeypointNet("hrnet_w18_small").train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    images, keypoints = marker_frames()
    for step in range(40):
        logits = net(images)
        if step == 0:
            assert detections(logits.detach(), keypoints) == (0, 0)
        optimizer.zero_grad()
        heatmap_loss(logits, keypoints, stride=2, sigma=3.0).backward()
        optimizer.step()
    hits, false = detections(net(images).detach(), keypoints)
    assert hits >= 2 and false == 0
