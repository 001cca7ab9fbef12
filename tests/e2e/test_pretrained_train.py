"""`model.pretrained: imagenet` in a real training run (issue 12.5): the weights come from the
Hugging Face cache and the log reports every backbone tensor loaded; with no cache and no Hub the
attempt ends in one clear line, no traceback.

The cache is laid out as huggingface_hub leaves it, holding timm's hrnet_w18_small with random
weights, so nothing is downloaded: HF_HUB_OFFLINE=1 makes sure of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from contract.config import AttemptConfig
from contract.events import read_events
from trainer.model.heads import KeypointNet
from trainer.model.pretrained import HUB_FILE, IMAGENET_WEIGHTS

pytestmark = pytest.mark.e2e
timm = pytest.importorskip("timm", reason="timm (the dev extra) builds the reference HRNet")

ARCH = "hrnet_w18_small"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    for split, frames in (("train", 4), ("valid", 2)):
        subprocess.run([sys.executable, "-m", "trainer", "synth", str(root / split), "--frames", str(frames)],
                       check=True, capture_output=True)
    document = AttemptConfig.model_validate({
        "model": {"arch": ARCH, "pretrained": "imagenet"},
        "data": {"train_dir": str(root / "train"), "valid_dir": str(root / "valid"), "num_workers": 0},
        "rung": {"batch_size": 4, "input_size": [128, 72]},
        "train": {"max_epochs": 1, "amp": False, "device": "cpu"},
        "logging": {"progress_every_seconds": 0},
    })
    document.save(root / "config.yaml")
    return root / "config.yaml"


def hub_cache(home: Path) -> None:
    """HF_HOME as `hf download` leaves it: refs/main naming a snapshot that holds the file."""
    repo = home / "hub" / f"models--{IMAGENET_WEIGHTS[ARCH].replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(0)
    state = timm.create_model(ARCH, pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / commit / HUB_FILE))


def train(config: Path, work: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainer", "train", "--config", str(config), "--workdir", str(work)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_imagenet_weights_load_from_the_cache(config: Path, tmp_path: Path) -> None:
    hub_cache(tmp_path / "hf")
    result = train(config, tmp_path / "work", tmp_path / "hf")
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "work" / "trainer.log").read_text()
    own = len(KeypointNet(ARCH).backbone.state_dict())
    assert (f"pretrained backbone imagenet ({IMAGENET_WEIGHTS[ARCH]}): {own} tensors loaded, 0 missing, "
            f"0 mismatched, 0 unexpected") in log


def test_without_the_hub_the_attempt_ends_in_one_line(config: Path, tmp_path: Path) -> None:
    result = train(config, tmp_path / "work", tmp_path / "empty-hf")
    assert result.returncode == 1  # a crash to the supervisor: retried (the Hub may be back), then failed
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"model.pretrained: imagenet needs the ImageNet weights of {ARCH}" in errors[0]
    assert "or give a local file" in errors[0]
    last = read_events(tmp_path / "work" / "events.jsonl")[-1]
    assert last["kind"] == "error" and "model.pretrained: imagenet" in last["message"]
