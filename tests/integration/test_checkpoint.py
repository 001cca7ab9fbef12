"""Checkpoint files: atomic, verified on load, pruned, snapshot taken before training goes on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from contract.files import TEMP_NAME, checkpoint_name, list_checkpoints, manifest_name
from trainer.training.checkpoint import BackgroundWriter, CheckpointError, load_checkpoint, write_checkpoint


def state(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((4, 4), value)}, "epoch": 2, "rng": (3, [1, 2, 3], None), "note": "x"}


def test_round_trip_with_manifest(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, state(), step=12, epoch=2, position=8, metrics={"val_loss": 0.5})
    assert path == tmp_path / checkpoint_name(12) and path.name == "step-000000012.pt"
    loaded, manifest = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.ones(4, 4))
    assert loaded["rng"] == (3, [1, 2, 3], None)
    assert (manifest.step, manifest.epoch, manifest.position, manifest.metrics) == (12, 2, 8, {"val_loss": 0.5})
    assert not [p for p in tmp_path.iterdir() if TEMP_NAME.match(p.name)]


def test_nan_metrics_survive_the_manifest(tmp_path: Path) -> None:
    """An early epoch has no confident prediction, so L2 and precision are NaN: still resumable."""
    path = write_checkpoint(tmp_path, state(), 3, 1, 0, {"val_loss": 0.5, "val_l2_px": math.nan})
    _, manifest = load_checkpoint(path)
    assert manifest.metrics["val_loss"] == 0.5 and math.isnan(manifest.metrics["val_l2_px"])


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, state(), 1, 0, 0, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_corrupt_bytes_are_refused(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, state(), 1, 0, 0, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_missing_or_corrupt_manifest_is_refused(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, state(), 1, 0, 0, {})
    (tmp_path / manifest_name(1)).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest is corrupt"):
        load_checkpoint(path)
    (tmp_path / manifest_name(1)).unlink()
    with pytest.raises(CheckpointError, match="no manifest"):
        load_checkpoint(path)
    assert list_checkpoints(tmp_path) == []


def test_code_in_a_checkpoint_is_never_run(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):  # would run on an unsafe load
            return (Path("/tmp/pwned-by-checkpoint").touch, ())

    path = write_checkpoint(tmp_path, {"evil": Payload()}, 1, 0, 0, {})
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not Path("/tmp/pwned-by-checkpoint").exists()


def test_background_writer_snapshots_prunes_and_orders(tmp_path: Path) -> None:
    writer = BackgroundWriter(tmp_path, keep_last=2)
    seen: list[int] = []
    live = state(1.0)
    for step in range(1, 5):
        writer.save(live, step, 0, step, {}, on_written=lambda p, s: seen.append(s))
        live["model"]["w"].add_(1.0)  # training goes on mutating in place
    writer.wait()
    assert seen == [1, 2, 3, 4]
    assert [(s, p.name) for s, p in list_checkpoints(tmp_path)] == [(3, "step-000000003.pt"), (4, "step-000000004.pt")]
    loaded, _ = load_checkpoint(tmp_path / checkpoint_name(4))
    assert torch.equal(loaded["model"]["w"], torch.full((4, 4), 4.0))
    assert json.loads((tmp_path / manifest_name(3)).read_text())["step"] == 3


def test_background_failure_surfaces_in_training_thread(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = BackgroundWriter(blocker / "checkpoints", keep_last=1)
    writer.save(state(), 1, 0, 0, {})
    with pytest.raises(CheckpointError, match="writing a checkpoint failed"):
        writer.wait()
