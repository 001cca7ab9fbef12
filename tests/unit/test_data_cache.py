"""The data cache's decisions (runner/data_cache.py) and keys (runner/layout.py), without I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import layout
from runner.data_cache import (ObjectManifest, Outcome, data_record, describe, manifest_key, mismatch,
                               object_key, parse_plan, read_manifest, upload_action)
from runner.store.jobs import is_job_name

SHA = "ab" * 32


def manifest(name: str = "train.zip", size: int = 10, sha256: str = SHA) -> ObjectManifest:
    return ObjectManifest(name=name, size=size, sha256=sha256, written_at="t", job="j", session="s")


def plan_line(cache: str = "calibration-2023", name: str = "train.zip") -> str:
    return json.dumps({"cache": cache, "files": [{"name": name, "path": "/d/train.zip", "needed": True,
                                                  "folder": False}]})


def test_data_prefix_is_never_a_job() -> None:
    """`_data` cannot be a job name, so `Store.list_jobs` and `Store.job` never reach the cache."""
    assert not is_job_name(layout.DATA)
    with pytest.raises(layout.UnsafeName):
        layout.check_job(layout.DATA)
    assert layout.data_key("calibration-2023", "train.zip") == "_data/calibration-2023/train.zip"
    assert layout.data_key("calibration-2023") == "_data/calibration-2023"


@pytest.mark.parametrize("name", ["", "..", "../jobs", "a/../b", "_data", "Calibration", "a b", "x" * 129])
def test_unsafe_cache_names_are_refused(name: str) -> None:
    with pytest.raises(layout.UnsafeName):
        layout.data_key(name, "train.zip")


@pytest.mark.parametrize("relative", ["../other/train.zip", "/etc/passwd", "a//b", "./a", "a\\b"])
def test_keys_cannot_leave_the_cache(relative: str) -> None:
    with pytest.raises(layout.UnsafeName):
        layout.data_key("calibration-2023", relative)


def test_plan_is_the_trainers_last_line() -> None:
    plan = parse_plan("INFO something\n" + plan_line())
    assert plan.cache == "calibration-2023" and plan.files[0].name == "train.zip"
    assert plan.files[0].path == Path("/d/train.zip") and plan.files[0].needed


@pytest.mark.parametrize("stdout", ["", "not json", plan_line(cache="../jobs"), plan_line(name="../../x"),
                                    plan_line(name="/abs"), plan_line(name="train.zip.manifest.json"),
                                    json.dumps({"cache": "c", "files": [{"name": "a", "path": "p"}]})])
def test_a_plan_that_is_not_one_is_refused(stdout: str) -> None:
    with pytest.raises(ValueError):
        parse_plan(stdout)


def test_objects_are_named_by_content_beside_their_manifest() -> None:
    assert object_key("train/keypoints.npz", SHA) == f"train/keypoints.npz.{SHA[:16]}"
    assert manifest_key("train/keypoints.npz") == "train/keypoints.npz.manifest.json"


def test_manifest_reading() -> None:
    good = manifest()
    assert read_manifest("train.zip", None) is None
    assert read_manifest("train.zip", good.model_dump_json().encode()) == good
    assert read_manifest("train.zip", b"\xff{not json") == "its manifest is unreadable"
    assert read_manifest("train.zip", b'{"name": "train.zip", "size": -1}') == "its manifest is unreadable"
    bad_sha = good.model_dump() | {"sha256": "../../" + "0" * 58}
    assert read_manifest("train.zip", json.dumps(bad_sha).encode()) == "its manifest is unreadable"
    other = manifest(name="../../../outside").model_dump_json().encode()
    assert "names another object" in str(read_manifest("train.zip", other))


def test_mismatch_says_which() -> None:
    m = manifest(size=10)
    assert mismatch(m, 10, SHA) is None
    assert "9 bytes" in str(mismatch(m, 9, SHA))
    assert "sha256" in str(mismatch(m, 10, "cd" * 32))


@pytest.mark.parametrize(("here", "found", "failed", "action"), [
    (False, None, False, None),                   # nothing prepared here to add
    (True, None, False, "add"),                   # the cache lacks it
    (True, manifest(), False, None),              # the cache has it (restored, or not needed here)
    (True, manifest(), True, "repair"),           # its object did not restore: put it back if ours matches
    (True, "its manifest is unreadable", True, None),  # a manifest is never replaced
    (False, manifest(), True, None),
])
def test_upload_action(here: bool, found, failed: bool, action) -> None:
    assert upload_action(here, found, failed) == action


def test_record_and_log_line_say_where_the_data_came_from() -> None:
    plan = parse_plan(json.dumps({"cache": "synthetic-gen1-f8-v4-s3", "files": [
        {"name": "train.tar", "path": "/d/train", "needed": True, "folder": True},
        {"name": "train/kp.npz", "path": "/d/train/.kp", "needed": True},
        {"name": "valid.tar", "path": "/d/valid", "needed": False, "folder": True}]}))
    outcomes = [Outcome(plan.files[0], manifest("train.tar"), restored=True),
                Outcome(plan.files[1], None),
                Outcome(plan.files[2], manifest("valid.tar"))]
    record = data_record(plan, outcomes, ["train/kp.npz"], keypoints_derived=8)
    assert record.restored == ["train.tar"] and record.prepared == ["train/kp.npz"]
    assert record.uploaded == ["train/kp.npz"] and record.keypoints_derived == 8
    line = describe(record)
    assert "1 file(s) restored from the store's data cache _data/synthetic-gen1-f8-v4-s3/ (train.tar)" in line
    assert "1 prepared here (train/kp.npz)" in line and "keypoints derived for 8 frame(s)" in line
    assert "prepared without the store's data cache" in describe(data_record(None, [], [], 3))

