"""A session fenced while a large upload is in flight must not land that upload on the new
holder's object (DESIGN §5, §6): checkpoints and weights have names that do not depend on the
session, so a late object under the final name would replace the new holder's, and the new
holder's manifest would no longer verify. The syncer uploads under a name of its own session,
checks the lease, then moves the object into place.

No processes: two `LeaseHolder`s on one job, and A's upload held "in flight" by wrapping A's
`JobStore.put_file`, during which B takes the job over and uploads its own objects of the same
names. Runs on a local store and on the GCS emulator (conftest's `store_url`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from contract.files import CHECKPOINTS_DIR, WEIGHTS_DIR, atomic_write, checkpoint_name, sha256_of
from contract.manifest import Manifest, WeightsManifest
from runner import layout
from runner.store.base import Progress
from runner.lease import LeaseHolder
from runner.status import JobState
from runner.store import JobStore, Store
from runner.sync import Syncer

JOB = "demo"
STEP = 40
FAST = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0}


def write_checkpoint(workdir: Path, step: int, payload: bytes) -> Manifest:
    """As the trainer writes one: the data file whole, then its manifest sidecar (no token)."""
    path = workdir / CHECKPOINTS_DIR / checkpoint_name(step)
    atomic_write(path, payload)
    manifest = Manifest(step=step, epoch=1, position=0, size=len(payload), sha256=sha256_of(path),
                        written_at=time.time(), metrics={"val_loss": 1.0})
    atomic_write(path.with_suffix(".json"), manifest.to_json())
    return manifest


def write_weights(workdir: Path, payload: bytes, name: str = "final") -> None:
    """Weights and the manifest the trainer writes beside them (without it nothing is uploaded)."""
    path = workdir / WEIGHTS_DIR / f"{name}.pt"
    atomic_write(path, payload)
    atomic_write(path.with_suffix(".json"), WeightsManifest(
        size=len(payload), sha256=sha256_of(path), step=STEP, epoch=1, written_at=time.time()).to_json())


def syncer(job: JobStore, workdir: Path, session: str, lease: LeaseHolder) -> Syncer:
    workdir.mkdir(parents=True, exist_ok=True)
    return Syncer(job, workdir, session, lease, JobState(job=JOB), keep_last=5, every_s=60)


def verifies(job: JobStore, step: int, tmp_path: Path) -> Manifest:
    """The store's manifest for `step`, after checking that its data object matches it."""
    manifest = Manifest.model_validate_json(job.get_bytes(layout.manifest_key(step)) or b"")
    local = tmp_path / "verify" / checkpoint_name(step)
    assert job.get_file(layout.checkpoint_key(step), local)
    assert local.stat().st_size == manifest.size, "the checkpoint's size differs from its manifest"
    assert sha256_of(local) == manifest.sha256, "the checkpoint does not match its manifest"
    local.unlink()
    return manifest


def upload_names(job: JobStore) -> list[str]:
    """Every upload-in-flight name left in the job's folders for large objects."""
    return [f"{folder}/{name}" for folder in (layout.CHECKPOINTS, WEIGHTS_DIR)
            for name in job.list(folder) if layout.is_upload_name(name)]


@pytest.mark.parametrize("what", ["checkpoint", "weights"])
def test_a_fenced_upload_never_replaces_the_new_holders_object(
        what: str, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    job_a = Store(store_url, **FAST).job(JOB)  # each session its own client, as two machines have
    job_b = Store(store_url, **FAST).job(JOB)
    a = LeaseHolder(job_a, "session-a", ttl_s=600)
    a.acquire(take_over=False)
    b = LeaseHolder(job_b, "session-b", ttl_s=600)
    sync_a = syncer(job_a, tmp_path / "wa", "session-a", a)
    sync_b = syncer(job_b, tmp_path / "wb", "session-b", b)
    a_payload, b_payload = os.urandom(300_000), os.urandom(300_000)  # same size: only the bytes differ
    if what == "checkpoint":
        write_checkpoint(sync_a.workdir, STEP, a_payload)
        write_checkpoint(sync_b.workdir, STEP, b_payload)
        final = layout.checkpoint_key(STEP)
    else:
        write_weights(sync_a.workdir, a_payload)
        write_weights(sync_b.workdir, b_payload)
        final = f"{WEIGHTS_DIR}/final.pt"

    put_file = job_a.put_file
    a_puts: list[str] = []
    b_ticked: list[bool] = []

    def a_put_file(local: Path, key: str, progress: Progress | None = None) -> None:
        """A's upload is in flight: B takes the job over and uploads the same names first (its
        data and, for a checkpoint, its manifest); then A's bytes arrive."""
        a_puts.append(key)
        if not b_ticked and key.startswith((f"{layout.CHECKPOINTS}/", f"{WEIGHTS_DIR}/")):
            assert sync_a.state.uploading is not None and sync_a.state.uploading.key == final
            b.acquire(take_over=True)
            b_ticked.append(sync_b.tick())
        put_file(local, key, progress)

    monkeypatch.setattr(job_a, "put_file", a_put_file)
    with caplog.at_level(logging.ERROR, logger="runner"):
        assert sync_a.tick() is False, "session A's tick went on after it was taken over"
    assert b_ticked == [True], "session B's tick did not upload everything"
    assert a.lost.is_set() and "taken over" in caplog.text
    assert sync_a.state.uploading is None

    if what == "checkpoint":
        manifest = verifies(job_b, STEP, tmp_path)
        assert manifest.token == b.token, f"the manifest of step {STEP} is not session B's"
        assert STEP not in sync_a.uploads.checkpoints
        assert job_b.list(layout.CHECKPOINTS) == [f"step-{STEP:09d}.json", f"step-{STEP:09d}.pt"]
    else:
        assert job_b.get_bytes(final) == b_payload, "session A's late weights replaced session B's"
        assert job_b.list(WEIGHTS_DIR) == ["final.json", "final.pt"]
        stored = WeightsManifest.model_validate_json(job_b.get_bytes(f"{WEIGHTS_DIR}/final.json") or b"")
        assert stored.token == b.token and stored.sha256 == sha256_of(sync_b.workdir / final)
    assert upload_names(job_b) == [], "an upload of session A (or B) was left behind"
    assert a_puts and final not in a_puts, f"session A uploaded under the final name: {a_puts}"

    # A's next tick writes nothing at all; B's next tick still finds everything in order.
    assert sync_a.tick() is False
    assert sync_b.tick() is True
    if what == "checkpoint":
        assert verifies(job_b, STEP, tmp_path).token == b.token


def test_a_tick_moves_each_large_object_into_place_and_leaves_no_upload_behind(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Store(store_url, **FAST).job(JOB)
    lease = LeaseHolder(job, "session-a", ttl_s=600)
    lease.acquire(take_over=False)
    sync = syncer(job, tmp_path / "wa", "session-a", lease)
    written = {step: write_checkpoint(sync.workdir, step, os.urandom(200_000 + step)) for step in (10, 20)}
    write_weights(sync.workdir, b"final weights")
    write_weights(sync.workdir, b"best weights", "best-evalai")
    moves: list[tuple[str, str]] = []
    move = job.move
    monkeypatch.setattr(job, "move", lambda src, dst: (moves.append((src, dst)), move(src, dst))[1])

    assert sync.tick() is True
    assert sorted(dst for _, dst in moves) == sorted(
        [layout.checkpoint_key(10), layout.checkpoint_key(20), "weights/best-evalai.pt", "weights/final.pt"])
    assert all(src == layout.upload_key(dst, "session-a") for src, dst in moves)
    for step, local in written.items():
        stored = verifies(job, step, tmp_path)
        assert (stored.token, stored.sha256, stored.size) == (lease.token, local.sha256, local.size)
    assert job.get_bytes("weights/final.pt") == b"final weights"
    assert job.get_bytes("weights/best-evalai.pt") == b"best weights"
    assert upload_names(job) == []
    assert job.list(layout.CHECKPOINTS) == ["step-000000010.json", "step-000000010.pt",
                                            "step-000000020.json", "step-000000020.pt"]
    assert sync.state.last_checkpoint is not None and sync.state.last_checkpoint.step == 20
    assert sync.state.uploading is None
    assert sync.tick() is True and len(moves) == 4, "a second tick uploaded again"


def test_a_failed_upload_leaves_nothing_under_either_name(store_url: str, tmp_path: Path) -> None:
    """The uploaded size differs from the trainer's manifest: nothing is moved into place, the
    upload is deleted, and the checkpoint stays queued for the next tick."""
    job = Store(store_url, **FAST).job(JOB)
    lease = LeaseHolder(job, "session-a", ttl_s=600)
    lease.acquire(take_over=False)
    sync = syncer(job, tmp_path / "wa", "session-a", lease)
    manifest = write_checkpoint(sync.workdir, 5, os.urandom(100_000))
    sidecar = sync.workdir / CHECKPOINTS_DIR / "step-000000005.json"
    atomic_write(sidecar, manifest.model_copy(update={"size": manifest.size + 1}).to_json())

    assert sync.tick() is False
    assert sync.failures == 1 and not lease.lost.is_set()
    assert job.list(layout.CHECKPOINTS) == []
    assert 5 not in sync.uploads.checkpoints
