"""Pure store logic: key layout, checkpoint choice and retention, lease decisions, deadline."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from runner import layout
from contract.manifest import Manifest
from runner.checkpoints import restore_candidates, to_delete
from runner.deadline import boot_time, deadline, session_start
from runner.lease import Lease, decide_acquire, next_number, prunable
from runner.store.local import local_root_problem


def test_keys_are_under_the_job() -> None:
    assert layout.job_key("demo", layout.SPEC) == "demo/spec.yaml"
    assert layout.job_key("demo", layout.checkpoint_key(1234)) == "demo/checkpoints/step-000001234.pt"
    assert layout.job_key("demo", layout.manifest_key(1234)) == "demo/checkpoints/step-000001234.json"
    assert layout.job_key("demo", layout.lease_key(42)) == "demo/lease/000000042.json"
    assert layout.job_key("demo", layout.log_key("s-1", "trainer.log")) == "demo/logs/s-1/trainer.log"
    assert layout.job_key("demo", layout.weights_key("best-evalai.pt")) == "demo/weights/best-evalai.pt"
    # one folder for the job's TensorBoard run, whichever session wrote the file
    name = "events.out.tfevents.1700000000.host.42.0"
    assert layout.job_key("demo", layout.tensorboard_key(name)) == f"demo/tensorboard/{name}"
    assert layout.tensorboard_key(f"sub/{name}") == f"tensorboard/sub/{name}"


@pytest.mark.parametrize("call", [
    lambda: layout.job_key("../x", layout.SPEC),
    lambda: layout.job_key("a/b", layout.SPEC),
    lambda: layout.job_key("a..b", layout.SPEC),
    lambda: layout.weights_key("../../etc/passwd"),
    lambda: layout.weights_key("/abs"),
    lambda: layout.log_key("..", "x"),
    lambda: layout.log_key("s", "a//b"),
    lambda: layout.tensorboard_key("../lease/000000099.json"),
    lambda: layout.tensorboard_key("/events.out.tfevents.1"),
    lambda: layout.tensorboard_key("a\\events.out.tfevents.1"),
    lambda: layout.tensorboard_key(""),
])
def test_unsafe_names_are_refused(call) -> None:
    with pytest.raises(layout.UnsafeName):
        call()


def test_names_from_listings_are_parsed_strictly() -> None:
    assert layout.parse_checkpoint_name("step-000000012.pt") == (12, "pt")
    assert layout.parse_checkpoint_name("step-000000012.json") == (12, "json")
    assert layout.parse_checkpoint_name("step-12.pt") is None
    assert layout.parse_checkpoint_name(".step-000000012.pt.tmp") is None
    assert layout.parse_lease_name("000000042.json") == 42
    assert layout.parse_lease_name("42.json") is None
    assert layout.parse_lease_name("1000000000.json") == 1_000_000_000  # numbers outgrow the padding
    assert layout.lease_key(1_000_000_000) == "lease/1000000000.json"
    assert layout.parse_lease_name("0000000042.json") is None  # not a second spelling of 42
    assert layout.parse_bad_marker_name("step-000000012.pt.bad") == 12
    assert layout.bad_marker_key(12) == "checkpoints/step-000000012.pt.bad"
    assert layout.parse_bad_marker_name("step-000000012.json.bad") is None
    assert layout.parse_checkpoint_name("step-000000012.pt.bad") is None  # never taken for a checkpoint


def test_uploads_go_to_a_name_of_the_session_beside_the_object() -> None:
    temp = layout.upload_key(layout.checkpoint_key(12), "20260101T000000Z-host-42")
    assert temp == "checkpoints/.upload-20260101T000000Z-host-42-step-000000012.pt"
    assert layout.upload_key("weights/final.pt", "s-1") == "weights/.upload-s-1-final.pt"
    assert layout.upload_key("weights/sub/best.pt", "s-1") == "weights/sub/.upload-s-1-best.pt"
    leaf = temp.rpartition("/")[2]
    assert layout.is_upload_name(leaf) and layout.is_upload_name(temp)
    assert not layout.is_upload_name("step-000000012.pt")
    # never taken for a checkpoint, a manifest or a bad marker by anything that parses listings
    assert layout.parse_checkpoint_name(leaf) is None
    assert layout.parse_checkpoint_name(leaf.removesuffix(".pt") + ".json") is None
    assert layout.parse_bad_marker_name(leaf + ".bad") is None
    assert layout.parse_lease_name(leaf) is None
    for session in ("..", "a/b", "", "-x"):
        with pytest.raises(layout.UnsafeName):
            layout.upload_key(layout.checkpoint_key(12), session)
    with pytest.raises(layout.UnsafeName):
        layout.upload_key("../weights/final.pt", "s-1")


def manifest(step: int, token: int) -> Manifest:
    return Manifest(step=step, epoch=0, position=0, size=1, sha256="x", token=token, written_at=0.0)


def test_restore_orders_by_token_then_step() -> None:
    stale_late = manifest(step=900, token=3)  # the old owner's late upload
    owner = [manifest(step=800, token=4), manifest(step=850, token=4)]
    assert [m.step for m in restore_candidates([stale_late, *owner])] == [850, 800, 900]


def test_retention_keeps_newest_and_best() -> None:
    ms = [manifest(step=s, token=1) for s in (10, 20, 30, 40, 50)]
    assert [m.step for m in to_delete(ms, keep_last=2, keep_steps=[20])] == [30, 10]


def test_lease_decisions() -> None:
    now = 1000.0
    held = Lease(number=7, owner="colab-a", host="vm-a", expires_at=now + 120)
    refused = decide_acquire(held, "colab-b", now, take_over=False)
    assert not refused.allowed and refused.wait_s == 120
    assert "colab-a on vm-a" in refused.message and "--take-over" in refused.message
    assert decide_acquire(held, "colab-b", now, take_over=True).allowed
    assert decide_acquire(held, "colab-a", now, take_over=False).allowed
    expired = Lease(number=7, owner="colab-a", host="vm-a", expires_at=now - 5)
    assert decide_acquire(expired, "colab-b", now, take_over=False).allowed
    assert decide_acquire(None, "colab-b", now, take_over=False).allowed
    assert next_number(None) == 1 and next_number(held) == 8
    assert prunable([1, 2, 3, 4, 5], keep=3) == [1, 2] and prunable([1, 2], keep=3) == []


def test_deadline() -> None:
    start = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    assert deadline(start, 12, 15) == datetime(2026, 11, 25, 19, 45, tzinfo=timezone.utc)
    assert deadline(start, None, 15) is None


def test_session_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu 1 2 3\nbtime 1764057600\nprocesses 5\n")
    assert boot_time(stat) == datetime.fromtimestamp(1764057600, tz=timezone.utc)
    now = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
    for name in ("COLAB_RELEASE_TAG", "COLAB_GPU", "COLAB_BACKEND_VERSION"):
        monkeypatch.delenv(name, raising=False)
    assert session_start("auto", now) == now
    fixed = datetime(2026, 11, 25, 7, 0)
    assert session_start(fixed, now) == fixed.replace(tzinfo=timezone.utc)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release")
    assert session_start("auto", now) == boot_time()


def test_local_root_problems_are_decided_from_facts() -> None:
    """Issue 11: Drive must be mounted; reading needs the root; writing needs its parent, unless --create."""
    root = Path("/data/runs")
    facts = {"drive_unmounted": False, "root_exists": True, "parent_exists": True}
    assert local_root_problem(root, "read", **facts) is None
    unmounted = local_root_problem(root, "create", **{**facts, "drive_unmounted": True, "root_exists": False})
    assert unmounted and "drive.mount('/content/drive')" in unmounted
    gone = {**facts, "root_exists": False}
    assert "no store at /data/runs" in (local_root_problem(root, "read", **gone) or "")
    assert local_root_problem(root, "write", **gone) is None  # submit makes it
    no_parent = {**gone, "parent_exists": False}
    assert "--create" in (local_root_problem(root, "write", **no_parent) or "")
    assert local_root_problem(root, "create", **no_parent) is None
