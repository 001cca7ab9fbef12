"""The keypoint cache: derived once, read on the next load, rebuilt per changed annotation."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer.data.cache import CACHE_NAME, load_keypoints
from trainer.data.keypoints.derivation import KEYPOINTS_VERSION, derive_keypoints
from trainer.data.soccernet import NATIVE_SIZE, read_split
from trainer.data.synthetic.generate import generate

FRAMES = 4


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    generate(folder, frames=FRAMES, seed=5)
    return folder


@pytest.fixture
def split_dir(generated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "split"))


def _fresh(split_dir: Path) -> np.ndarray:
    return np.stack([derive_keypoints(f.annotation, *NATIVE_SIZE) for f in read_split(split_dir).frames])


def test_first_load_derives_and_writes_the_cache(split_dir: Path) -> None:
    keypoints, stats = load_keypoints(read_split(split_dir))
    assert (stats.derived, stats.reused, stats.written) == (FRAMES, 0, True)
    assert stats.path == split_dir / CACHE_NAME and stats.path.is_file()
    assert keypoints.shape == (FRAMES, 57, 3) and keypoints.dtype == np.float32
    np.testing.assert_array_equal(keypoints, _fresh(split_dir))
    assert [p.name for p in split_dir.iterdir() if CACHE_NAME in p.name] == [CACHE_NAME]  # no temp file left


def test_second_load_reads_the_cache(split_dir: Path) -> None:
    first, _ = load_keypoints(read_split(split_dir))
    second, stats = load_keypoints(read_split(split_dir))
    assert (stats.derived, stats.reused, stats.written) == (0, FRAMES, False)
    np.testing.assert_array_equal(first, second)


def test_cached_values_are_what_is_returned(split_dir: Path) -> None:
    """Plant a marker in the cache file: a load that re-derived would not return it."""
    load_keypoints(read_split(split_dir))
    path = split_dir / CACHE_NAME
    with np.load(path) as data:
        arrays = dict(data)
    arrays["keypoints"][0, 0] = (123.0, 45.0, 1.0)
    np.savez(path, **arrays)
    keypoints, stats = load_keypoints(read_split(split_dir))
    assert stats.derived == 0
    np.testing.assert_array_equal(keypoints[0, 0], [123.0, 45.0, 1.0])


def test_changed_annotation_is_derived_again(split_dir: Path) -> None:
    load_keypoints(read_split(split_dir))
    annotation_path = split_dir / "00002.json"
    annotation = json.loads(annotation_path.read_text())
    dropped = sorted(annotation)[0]
    del annotation[dropped]
    annotation_path.write_text(json.dumps(annotation))
    keypoints, stats = load_keypoints(read_split(split_dir))
    assert (stats.derived, stats.reused, stats.written) == (1, FRAMES - 1, True)
    np.testing.assert_array_equal(keypoints, _fresh(split_dir))
    assert load_keypoints(read_split(split_dir))[1].derived == 0


def test_removed_frame_is_dropped_from_the_cache(split_dir: Path) -> None:
    load_keypoints(read_split(split_dir))
    (split_dir / "00001.json").unlink()
    keypoints, stats = load_keypoints(read_split(split_dir))
    assert (stats.derived, stats.written) == (0, True)
    with np.load(split_dir / CACHE_NAME) as data:
        assert len(data["sha1"]) == FRAMES - 1
    assert len(keypoints) == FRAMES - 1


def test_other_version_or_size_is_rebuilt(split_dir: Path) -> None:
    load_keypoints(read_split(split_dir))
    path = split_dir / CACHE_NAME
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(path, **{**arrays, "version": np.array(KEYPOINTS_VERSION + "-old")})
    assert load_keypoints(read_split(split_dir))[1].derived == FRAMES
    keypoints, stats = load_keypoints(read_split(split_dir), size=(480, 270))
    assert stats.derived == FRAMES
    np.testing.assert_array_equal(
        keypoints[0], derive_keypoints(read_split(split_dir).frames[0].annotation, 480, 270)
    )


def test_corrupt_cache_is_rebuilt(split_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (split_dir / CACHE_NAME).write_bytes(b"PK\x03\x04 not really a zip")
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        keypoints, stats = load_keypoints(read_split(split_dir))
    assert stats.derived == FRAMES and stats.written
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(keypoints, _fresh(split_dir))


def test_unwritable_cache_location_still_gives_keypoints(split_dir: Path) -> None:
    not_a_folder = split_dir / "00000.jpg"
    keypoints, stats = load_keypoints(read_split(split_dir), cache_path=not_a_folder / CACHE_NAME)
    assert (stats.derived, stats.written) == (FRAMES, False)
    np.testing.assert_array_equal(keypoints, _fresh(split_dir))
