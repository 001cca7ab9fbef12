"""`python -m trainer prepare`: what a spec's data section turns into on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.data.prepare import DataNotFound, prepare


def test_synthetic_is_rendered_once_and_splits_are_disjoint(tmp_path: Path) -> None:
    dirs = prepare("synthetic", tmp_path, "train", "valid", frames=3, valid_frames=2, seed=5)
    train = sorted(p.name for p in dirs["train"].glob("*.jpg"))
    valid = sorted(p.name for p in dirs["valid"].glob("*.jpg"))
    assert train == ["00000.jpg", "00001.jpg", "00002.jpg"] and valid == ["00003.jpg", "00004.jpg"]
    stamp = (dirs["train"] / "00000.jpg").stat().st_mtime_ns
    prepare("synthetic", tmp_path, "train", "valid", frames=3, valid_frames=2, seed=5)
    assert (dirs["train"] / "00000.jpg").stat().st_mtime_ns == stamp


def test_path_source_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataNotFound, match="valid does not exist"):
        prepare("path", tmp_path, "train", "valid")
    (tmp_path / "valid").mkdir()
    assert prepare("path", tmp_path, "train", "valid")["valid"] == tmp_path / "valid"


def test_soccernet_split_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SoccerNet has no split 'mine'"):
        prepare("soccernet", tmp_path, "mine", "valid")


def test_cli_prints_folders_or_a_clean_error(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "trainer", "prepare", "--source", "synthetic", "--root",
                         str(tmp_path), "--frames", "1", "--valid-frames", "1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"train": str(tmp_path / "train"), "valid": str(tmp_path / "valid")}
    bad = subprocess.run([sys.executable, "-m", "trainer", "prepare", "--source", "path", "--root",
                          str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: data.source is 'path'")
    assert "Traceback" not in bad.stderr
