"""Helpers shared by the benchmarks: synthetic data, a tiny job spec, event reading, ours timed against a baseline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import yaml

from contract.events import read_events

ROOT = Path(__file__).resolve().parents[1]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
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


def ours_against_baseline(ours: Callable[[_Item], _Result], baseline: Callable[[_Item], _Result],
                          items: Sequence[_Item], repeat: int) -> tuple[dict[str, list[_Result]], dict[str, list[float]]]:
    """Each function over every item, `repeat` rounds, the two taking turns within a round so that
    both see the same machine state: the results ({"ours": [...], "baseline": [...]}) and each
    round's ms per item."""
    results: dict[str, list[_Result]] = {}
    timings: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(repeat):
        for name, function in (("ours", ours), ("baseline", baseline)):
            start = time.perf_counter()
            results[name] = [function(item) for item in items]
            timings[name].append((time.perf_counter() - start) * 1000.0 / len(items))
    return results, timings


def ms_per_item_line(timings: dict[str, list[float]], digits: int = 2) -> str:
    """Best round of each, the rounds' spread and the ratio: the benches' timing line."""
    best = {name: min(values) for name, values in timings.items()}
    spread = {name: f"{min(values):.{digits}f}-{max(values):.{digits}f}" for name, values in timings.items()}
    return (f"ms/frame: ours {best['ours']:.2f} (rounds {spread['ours']}), baseline {best['baseline']:.2f} "
            f"(rounds {spread['baseline']}), ratio {best['baseline'] / best['ours']:.2f}x")
