"""`python -m trainer prepare`: what a spec's data section turns into on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.data.cache import CACHE_NAME, store_object_name
from trainer.data.prepare import DataNotFound, cache_plan, prepare, prepare_keypoints
from trainer.data.synthetic.generate import GENERATOR_VERSION


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
    assert json.loads(ok.stdout) == {"train": str(tmp_path / "train"), "valid": str(tmp_path / "valid"),
                                     "keypoints": {"train": {"frames": 1, "derived": 1},
                                                   "valid": {"frames": 1, "derived": 1}}}
    bad = subprocess.run([sys.executable, "-m", "trainer", "prepare", "--source", "path", "--root",
                          str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: data.source is 'path'")
    assert "Traceback" not in bad.stderr


def _plan(source: str, root: Path, **options: int) -> dict[str, tuple[Path, bool]]:
    name, files = cache_plan(source, root, "train", "valid", **options)
    return {"cache": name, **{f.name: (f.path, f.needed) for f in files}}


def test_cache_plan_names_the_synthetic_files_and_what_is_missing(tmp_path: Path) -> None:
    kp = store_object_name()
    before = _plan("synthetic", tmp_path, frames=2, valid_frames=1, seed=4)
    assert before == {"cache": f"synthetic-{GENERATOR_VERSION}-f2-v1-s4",
                      "train.tar": (tmp_path / "train", True), f"train/{kp}": (tmp_path / "train" / CACHE_NAME, True),
                      "valid.tar": (tmp_path / "valid", True), f"valid/{kp}": (tmp_path / "valid" / CACHE_NAME, True)}
    dirs = prepare("synthetic", tmp_path, "train", "valid", frames=2, valid_frames=1, seed=4)
    assert prepare_keypoints(dirs) == {"train": {"frames": 2, "derived": 2}, "valid": {"frames": 1, "derived": 1}}
    after = _plan("synthetic", tmp_path, frames=2, valid_frames=1, seed=4)
    assert not any(value[1] for key, value in after.items() if key != "cache")
    assert prepare_keypoints(dirs)["train"] == {"frames": 2, "derived": 0}
    (tmp_path / "train" / "00001.camera.json").unlink()  # an incomplete frame: the folder is wanted again
    assert _plan("synthetic", tmp_path, frames=2, valid_frames=1, seed=4)["train.tar"][1]
    assert _plan("synthetic", tmp_path, frames=3, valid_frames=1, seed=4)["cache"].endswith("-f3-v1-s4")


def test_cache_plan_wants_a_soccernet_zip_only_while_nothing_here_can_make_the_split(tmp_path: Path) -> None:
    kp = store_object_name()
    plan = _plan("soccernet", tmp_path)
    assert plan["cache"] == "calibration-2023"
    assert plan["train.zip"] == (tmp_path / "calibration-2023" / "train.zip", True)
    assert plan[f"valid/{kp}"] == (tmp_path / "calibration-2023" / "valid" / CACHE_NAME, True)
    (tmp_path / "calibration-2023").mkdir()
    (tmp_path / "calibration-2023" / "train.zip").write_bytes(b"a downloaded zip")
    assert not _plan("soccernet", tmp_path)["train.zip"][1]  # unpacking it is all that is left to do


def test_cache_plan_of_a_path_root_follows_its_listing(tmp_path: Path) -> None:
    prepare("synthetic", tmp_path, "train", "valid", frames=1, valid_frames=1, seed=0)
    plan = _plan("path", tmp_path)
    assert plan["cache"].startswith("path-") and set(plan) == {"cache", f"train/{store_object_name()}",
                                                                f"valid/{store_object_name()}"}
    prepare("synthetic", tmp_path, "train", "valid", frames=2, valid_frames=1, seed=0)  # frame 1 of train: new
    assert _plan("path", tmp_path)["cache"] != plan["cache"]
    assert _plan("path", tmp_path / "nowhere") == {"cache": _plan("path", tmp_path / "nowhere")["cache"]}
