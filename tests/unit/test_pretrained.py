"""ImageNet backbone weights onto our HRNet (issue 12.5): timm's names map onto every backbone tensor,
the Hub table follows timm's defaults, and local files load what fits and say what did not.

timm builds its HRNets with random weights here, so nothing is downloaded: the mapping is what is
tested, the download is huggingface_hub's (tests/e2e/test_pretrained_train.py runs it from a cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from contract.config import ModelConfig
from trainer.model.heads import KeypointNet
from trainer.model.pretrained import (CLASSIFIER_PREFIXES, IMAGENET_WEIGHTS, PretrainedUnavailable, load_backbone,
                                      load_pretrained, read_state_dict)

timm = pytest.importorskip("timm", reason="timm (the dev extra) builds the reference HRNets")


@pytest.mark.parametrize("arch", ["hrnet_w18_small", "hrnet_w48"])
def test_every_backbone_tensor_loads_from_timm(arch: str) -> None:
    torch.manual_seed(0)
    source = timm.create_model(arch, pretrained=False).state_dict()
    net = KeypointNet(arch)
    report = load_backbone(net.backbone, source)
    own = net.backbone.state_dict()
    assert report.missing == [] and report.mismatched == [] and report.unexpected == []
    assert report.loaded == len(own)
    head = [k for k in source if k.startswith(CLASSIFIER_PREFIXES)]
    assert report.classifier == len(head) == len(source) - len(own)
    assert {k.split(".")[0] for k in head} == {"incre_modules", "downsamp_modules", "final_layer", "classifier"}
    for key, value in own.items():
        assert torch.equal(value, source[key]), key
    assert not any(k.startswith("head.") for k in own)  # our head (fuse, refine, classifier) stays as built


def test_the_hub_table_is_timms_default_for_each_arch() -> None:
    for arch, repo in IMAGENET_WEIGHTS.items():
        assert timm.models.get_pretrained_cfg(arch).hf_hub_id == repo


def test_a_safetensors_file_loads_by_path(tmp_path: Path) -> None:
    """What `hf download` leaves, used as a local file."""
    source = timm.create_model("hrnet_w18_small", pretrained=False).state_dict()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    net = KeypointNet("hrnet_w18_small")
    report = load_pretrained(net.backbone, "hrnet_w18_small", str(path))
    assert report.loaded == len(net.backbone.state_dict()) and not report.missing
    assert torch.equal(net.backbone.conv1.weight, source["conv1.weight"])


def test_a_torch_file_loads_what_fits_and_reports_the_rest(tmp_path: Path) -> None:
    source = KeypointNet("hrnet_w18_small").backbone.state_dict()
    state = {f"module.{k}": v for k, v in source.items() if not k.startswith("stage4")}
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)  # wrong shape
    state["fc.weight"] = torch.zeros(10, 10)  # not ours
    state["classifier.weight"] = torch.zeros(1000, 2048)  # timm's ImageNet head: set aside
    path = tmp_path / "imagenet.pt"
    torch.save({"state_dict": state}, path)
    net = KeypointNet("hrnet_w18_small")
    report = load_pretrained(net.backbone, "hrnet_w18_small", str(path))
    assert report.mismatched == ["conv1.weight"]
    assert report.unexpected == ["fc.weight"] and report.classifier == 1
    assert report.missing and all(k.startswith("stage4") for k in report.missing)
    assert not any(k.endswith("num_batches_tracked") for k in report.missing)
    assert torch.equal(net.backbone.state_dict()["bn1.weight"], source["bn1.weight"])
    assert report.loaded == len(state) - 3
    assert "mismatched: conv1.weight" in report.describe()


def test_a_file_that_is_not_weights_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "backbone.pth"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedUnavailable, match=r"backbone\.pth cannot be read as weights"):
        read_state_dict(broken)
    with pytest.raises(PretrainedUnavailable, match=r"missing\.pth is not a file"):
        read_state_dict(tmp_path / "missing.pth")


def test_imagenet_is_a_valid_pretrained_value() -> None:
    assert ModelConfig(pretrained="imagenet").pretrained == "imagenet"
    assert ModelConfig(pretrained="/content/backbone.pth").pretrained == "/content/backbone.pth"
    with pytest.raises(ValueError, match="'imagenet' or the path of a local weights file"):
        ModelConfig(pretrained=" ")
