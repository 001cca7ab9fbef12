"""HRNet keypoint network: shapes at odd sizes, activation checkpointing, and the mixed-precision
train step on CUDA (pretrained loading: test_pretrained.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from trainer.data.keypoints.table import UNKNOWN, VISIBLE
from trainer.model.heads import NUM_OUTPUTS, KeypointNet
from trainer.model.hrnet import CONFIGS
from trainer.model.metamodel import HeatmapModel


@pytest.fixture(scope="module")
def net() -> KeypointNet:
    torch.manual_seed(0)
    return KeypointNet("hrnet_w18_small")


def test_output_is_stride_2_rounded_up(net: KeypointNet) -> None:
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 101, 181))
    assert out.shape == (1, NUM_OUTPUTS, 51, 91)


def test_all_paper_configs_build() -> None:
    assert set(CONFIGS) == {"hrnet_w18_small", "hrnet_w18", "hrnet_w32", "hrnet_w48"}
    counts = {arch: sum(p.numel() for p in KeypointNet(arch).backbone.parameters()) for arch in ("hrnet_w18_small", "hrnet_w48")}
    assert 1.0e6 < counts["hrnet_w18_small"] < 2.0e6
    assert 60e6 < counts["hrnet_w48"] < 70e6  # HRNetV2-W48 backbone is about 65 M parameters


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="hrnet_w18_small"):
        KeypointNet("hrnet_w64")


def test_activation_checkpointing_gives_same_results(net: KeypointNet) -> None:
    plain = copy.deepcopy(net).train()
    ckpt = copy.deepcopy(net).train()
    ckpt.set_activation_checkpointing(True)
    x = torch.randn(2, 3, 64, 96)
    out_plain, out_ckpt = plain(x), ckpt(x)
    out_plain.square().mean().backward()
    out_ckpt.square().mean().backward()
    assert torch.allclose(out_plain, out_ckpt, atol=1e-6)
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-5), name
    for (name, a), b in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(a, b), f"buffer {name} differs: BatchNorm stats were updated twice"


@pytest.mark.gpu
def test_amp_train_step_on_cuda_gives_finite_loss() -> None:
    """The step real runs take: float16 autocast forward, float32 loss, scaled backward, Adam."""
    torch.manual_seed(0)
    model = HeatmapModel({
        "nn_module": {"arch": "hrnet_w18_small"},
        "optimizer": {"lr": 1e-4},
        "loss": {"stride": 2, "sigma": 3.0},
        "device": "cuda",
    })
    model.setup(amp=True, accumulation=1)
    model.epoch_end = 2
    keypoints = torch.full((2, 57, 3), float("nan"))
    keypoints[..., 2] = UNKNOWN
    keypoints[:, :4] = torch.tensor([[20.0, 10.0, VISIBLE], [100.0, 60.0, VISIBLE], [200.0, 30.0, VISIBLE],
                                     [150.0, 100.0, VISIBLE]])
    batch = {"image": torch.randint(0, 256, (2, 3, 128, 224), dtype=torch.uint8), "keypoints": keypoints}
    output = model.train_step(batch, state=None)
    assert model.amp and model.scaler.is_enabled()
    assert math.isfinite(output["loss"]) and model.position.step == 1
    assert all(torch.isfinite(p).all() for p in model.nn_module.parameters())
    with torch.no_grad(), torch.autocast("cuda", enabled=model.amp):
        logits = model.nn_module(batch["image"].cuda().float() / 255.0)
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
