"""HRNet keypoint network: shapes at odd sizes, activation checkpointing, pretrained loading."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from trainer.model.heads import NUM_OUTPUTS, KeypointNet
from trainer.model.hrnet import CONFIGS


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


def test_pretrained_backbone_loads_what_fits(tmp_path: Path) -> None:
    source = KeypointNet("hrnet_w18_small").backbone.state_dict()
    state = {f"module.{k}": v for k, v in source.items() if not k.startswith("stage4")}
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)  # wrong shape
    state["classifier.weight"] = torch.zeros(10, 10)  # ImageNet head: not ours
    path = tmp_path / "imagenet.pt"
    torch.save({"state_dict": state}, path)
    net = KeypointNet("hrnet_w18_small")
    report = net.load_pretrained_backbone(path)
    assert report.mismatched == ["conv1.weight"]
    assert report.unexpected == ["classifier.weight"]
    assert report.missing and all(k.startswith(("stage4", "conv1")) for k in report.missing)
    assert torch.equal(net.backbone.state_dict()["bn1.weight"], source["bn1.weight"])
    assert report.loaded == len(state) - 2
