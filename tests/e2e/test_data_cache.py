"""The store's data cache through the real CLI: a second job on the same store, on a fresh work dir
with its data dir deleted (a new Colab VM), restores its data from STORE/_data/ and derives no
keypoints; its status and its log say so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.store import Store
from tests.e2e.test_runner import runner, state_of, write_spec

pytestmark = pytest.mark.e2e

CACHE = "synthetic-gen1-f8-v4-s3"  # the generator version, frames, valid frames and seed of write_spec's data
FILES = ["train.tar", "train/keypoints-kp57-derive-2-960x540.npz", "valid.tar",
         "valid/keypoints-kp57-derive-2-960x540.npz"]


def test_a_second_session_takes_its_data_from_the_store(tmp_path: Path) -> None:
    store, data = str(tmp_path / "store"), tmp_path / "data"
    first = runner("submit", str(write_spec(tmp_path / "a.yaml", "first", store, data, train={"max_epochs": 1})),
                   "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert state_of(store, "first")["sessions"][-1]["data"] == {
        "cache": CACHE, "restored": [], "prepared": FILES, "uploaded": FILES, "keypoints_derived": 12}

    shutil.rmtree(data)
    second = runner("submit", str(write_spec(tmp_path / "b.yaml", "second", store, data, train={"max_epochs": 1})),
                    "--workdir", str(tmp_path / "w2"), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert state_of(store, "second")["sessions"][-1]["data"] == {
        "cache": CACHE, "restored": FILES, "prepared": [], "uploaded": [], "keypoints_derived": 0}
    assert f"4 file(s) restored from the store's data cache _data/{CACHE}/" in second.stderr + second.stdout
    assert Store(store).list_jobs() == ["first", "second"]
