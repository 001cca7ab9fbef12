"""Helpers shared by the runner benchmarks: synthetic data, a tiny job spec, event reading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from contract.events import read_events

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(ROOT)}


def prepare_frames(root: Path, frames: int, valid_frames: int) -> None:
    subprocess.run([sys.executable, "-m", "trainer", "prepare", "--source", "synthetic", "--root", str(root),
                    "--frames", str(frames), "--valid-frames", str(valid_frames)], check=True, env=ENV,
                   capture_output=True)


def write_spec(path: Path, name: str, store: Path, data: Path, frames: int, valid_frames: int, *,
               epochs: int, sync_s: float, size: tuple[int, int] = (256, 144)) -> Path:
    spec = {
        "name": name, "store": str(store),
        "data": {"source": "synthetic", "root": str(data), "frames": frames, "valid_frames": valid_frames,
                 "num_workers": 2},
        "model": {"arch": "hrnet_w18_small"},
        "train": {"batch_size": 4, "input_size": list(size), "max_epochs": epochs, "amp": False, "device": "cpu"},
        "oom": {"batch_sizes": [4], "input_sizes": [list(size)], "activation_checkpointing": False},
        "checkpoint": {"every_minutes": 0.05},
        "sync": {"every_seconds": sync_s},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def training_rate(events_path: Path) -> float:
    """Samples/s over the steady part of training: mean of the progress reports after the first."""
    rates = [e["samples_per_s"] for e in read_events(events_path) if e["kind"] == "progress"][1:]
    return sum(rates) / len(rates)
