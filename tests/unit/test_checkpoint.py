"""Checkpoint files: atomic, verified on load, pruned, snapshot taken before training goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import (
    BackgroundWriter,
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    manifest_path,
    write_checkpoint,
)


def state(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((4, 4), value)}, "epoch": 2, "rng": (3, [1, 2, 3], None), "note": "x"}


def test_round_trip_with_manifest(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, state(), step=12, epoch=2, position=8, metrics={"val_loss": 0.5})
    assert path == checkpoint_path(tmp_path, 12) and path.name == "step-000000012.pt"
    loaded, manifest = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.ones(4, 4))
    assert loaded["rng"] == (3, [1, 2, 3], None)
    assert (manifest.step, manifest.epoch, manifest.position, manifest.metrics) == (12, 2, 8, {"val_loss": 0.5})
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


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
    manifest_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest is corrupt"):
        load_checkpoint(path)
    manifest_path(path).unlink()
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
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000003.pt", "step-000000004.pt"]
    loaded, _ = load_checkpoint(checkpoint_path(tmp_path, 4))
    assert torch.equal(loaded["model"]["w"], torch.full((4, 4), 4.0))
    assert json.loads(manifest_path(checkpoint_path(tmp_path, 3)).read_text())["step"] == 3


def test_background_failure_surfaces_in_training_thread(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = BackgroundWriter(blocker / "checkpoints", keep_last=1)
    writer.save(state(), 1, 0, 0, {})
    with pytest.raises(CheckpointError, match="writing a checkpoint failed"):
        writer.wait()
