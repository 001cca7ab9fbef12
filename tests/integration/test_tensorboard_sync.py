"""The syncer's TensorBoard uploads (issue 13): every session's event files go to the job's one
folder `tensorboard/`, so TensorBoard reads the job as one run; a file goes up again only when the
trainer appended to it; `pending` names what a failed final flush leaves only local; a fenced
session sends none; a new session on the same work dir (an attach after a failed flush) brings
the store's copies up to date there, and leaves other sessions' files alone.

No processes, no torch: files written as the trainer's SummaryWriter leaves them (the bytes do not
matter to the syncer), real `LeaseHolder`s, on a local store and on the GCS emulator.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from contract.files import TENSORBOARD_DIR
from runner import layout
from runner.lease import LeaseHolder
from runner.status import JobState
from runner.store import JobStore, Store
from runner.sync import Syncer

JOB = "demo"
FAST = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0}
A_FILE = "events.out.tfevents.1700000000.vm-a.4242.0"
B_FILE = "events.out.tfevents.1700000600.vm-b.4242.0"  # another machine, later, the same pid


def session(job: JobStore, workdir: Path, name: str, take_over: bool = False) -> Syncer:
    """A session holding the job's lease, with its syncer on `workdir`."""
    lease = LeaseHolder(job, name, ttl_s=600)
    lease.acquire(take_over=take_over)
    workdir.mkdir(parents=True, exist_ok=True)
    return Syncer(job, workdir, name, lease, JobState(job=JOB), keep_last=5, every_s=60)


def write_events(workdir: Path, relative: str, data: bytes, append: bool = False) -> None:
    path = workdir / TENSORBOARD_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if append else "wb") as f:
        f.write(data)


def stored(job: JobStore) -> dict[str, bytes]:
    """The job's TensorBoard folder: file name → bytes."""
    return {name: job.get_bytes(layout.tensorboard_key(name)) or b"" for name in job.list(layout.TENSORBOARD)}


def test_event_files_go_to_the_jobs_one_folder_on_change(store_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    job = Store(store_url, **FAST).job(JOB)
    sync = session(job, tmp_path / "work", "session-a")
    write_events(sync.workdir, A_FILE, b"epoch 1")
    write_events(sync.workdir, f"sub/{A_FILE}", b"a writer's sub-folder")
    write_events(sync.workdir, f".{A_FILE}.partial", b"a temp file")
    assert sync.pending() == [f"{TENSORBOARD_DIR}/{A_FILE}", f"{TENSORBOARD_DIR}/sub/{A_FILE}"]

    puts: list[str] = []
    put_file = job.put_file
    monkeypatch.setattr(job, "put_file",
                        lambda local, key, progress=None: (puts.append(key), put_file(local, key, progress))[1])
    assert sync.tick() is True
    assert sorted(puts) == [layout.tensorboard_key(A_FILE), layout.tensorboard_key(f"sub/{A_FILE}")]
    assert stored(job) == {A_FILE: b"epoch 1"}
    assert job.get_bytes(layout.tensorboard_key(f"sub/{A_FILE}")) == b"a writer's sub-folder"
    assert job.list_dirs(layout.LOGS) == [], "event files went to the session's log folder"
    assert sync.pending() == []

    puts.clear()
    assert sync.tick() is True and puts == [], "an unchanged file was uploaded again"
    write_events(sync.workdir, A_FILE, b", epoch 2", append=True)
    assert sync.pending() == [f"{TENSORBOARD_DIR}/{A_FILE}"]
    assert sync.tick() is True and puts == [layout.tensorboard_key(A_FILE)]
    assert stored(job) == {A_FILE: b"epoch 1, epoch 2"}


def test_a_fenced_session_sends_no_event_file(store_url: str, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A's trainer starts a file after B took the job over: in TensorBoard's file-name order it
    would come after B's and its purge_step would drop B's epochs. A's tick sends nothing."""
    job_a = Store(store_url, **FAST).job(JOB)
    job_b = Store(store_url, **FAST).job(JOB)
    a = session(job_a, tmp_path / "wa", "session-a")
    write_events(a.workdir, A_FILE, b"A before")
    assert a.tick() is True
    b = session(job_b, tmp_path / "wb", "session-b", take_over=True)
    write_events(b.workdir, B_FILE, b"B")
    assert b.tick() is True

    write_events(a.workdir, A_FILE, b", A after", append=True)
    write_events(a.workdir, "events.out.tfevents.1700000900.vm-a.4343.0", b"A's next attempt")
    with caplog.at_level(logging.ERROR, logger="runner"):
        assert a.tick() is False
    assert a.lease.lost.is_set() and "taken over" in caplog.text
    assert stored(job_b) == {A_FILE: b"A before", B_FILE: b"B"}


def test_an_attach_on_the_same_work_dir_brings_its_files_up_to_date(store_url: str, tmp_path: Path) -> None:
    """Session A uploaded its file, wrote more, and its final flush failed (the store was down):
    `pending` names the file. B, on another machine, took the job and logged its own file; then C,
    attached on A's work dir, uploads A's whole file under its name and leaves B's alone."""
    job = Store(store_url, **FAST).job(JOB)
    work = tmp_path / "work-a"
    a = session(job, work, "session-a")
    write_events(work, A_FILE, b"epoch 1")
    assert a.tick() is True
    write_events(work, A_FILE, b", epoch 2", append=True)
    assert a.pending() == [f"{TENSORBOARD_DIR}/{A_FILE}"]

    b = session(job, tmp_path / "work-b", "session-b", take_over=True)
    write_events(b.workdir, B_FILE, b"B's epochs")
    assert b.tick() is True

    c = session(job, work, "session-c", take_over=True)
    assert c.pending() == [f"{TENSORBOARD_DIR}/{A_FILE}"]  # a new session knows of no upload yet
    assert c.tick() is True
    assert stored(job) == {A_FILE: b"epoch 1, epoch 2", B_FILE: b"B's epochs"}
    assert c.pending() == []


def test_a_file_whose_name_is_no_safe_key_is_skipped(store_url: str, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """One odd file name is reported and left out; the other files and the tick go on."""
    job = Store(store_url, **FAST).job(JOB)
    sync = session(job, tmp_path / "work", "session-a")
    write_events(sync.workdir, "odd\\name", b"?")
    write_events(sync.workdir, A_FILE, b"epoch 1")
    with caplog.at_level(logging.WARNING, logger="runner"):
        assert sync.tick() is True
    assert "odd" in caplog.text and "not uploaded" in caplog.text
    assert stored(job) == {A_FILE: b"epoch 1"}
    assert sync.pending() == []
