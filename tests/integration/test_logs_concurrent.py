"""A job's logs at scale (issue 14): parts read many at a time and still in order; a session's
parts merged into one object when it ends, through the real `Syncer` and `LeaseHolder`; readers
that show each line once whether they read before, during or after the merge, and a session cut
off between writing the merged object and deleting its parts. On a local store and on the GCS
emulator; the last test through the real `runner logs`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from contract.files import EVENTS_FILE, TRAINER_LOG
from runner import layout
from runner.lease import LeaseHolder
from runner.logs import Cursor, LogReader, merged_name, part_name, plan, session_spans
from runner.spec import dump_spec, parse_spec
from runner.status import JobState
from runner.store import JobStore, Store
from runner.sync import Syncer

JOB = "demo"
FAST = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0}
RUNNER = shutil.which("runner")


def lines(first: int, count: int, tag: str = "line") -> bytes:
    return b"".join(f"{tag} {n:05d} loss 0.{n:04d}\n".encode() for n in range(first, first + count))


def put_parts(job: JobStore, session: str, chunks: list[bytes], name: str = TRAINER_LOG) -> None:
    for number, chunk in enumerate(chunks, 1):
        job.put_bytes(layout.log_key(session, part_name(name, number)), chunk)


def read_all(reader: LogReader) -> bytes:
    return b"".join(reader.read_new())


def session(job: JobStore, workdir: Path, name: str, take_over: bool = False) -> Syncer:
    lease = LeaseHolder(job, name, ttl_s=600)
    lease.acquire(take_over=take_over)
    workdir.mkdir(parents=True, exist_ok=True)
    return Syncer(job, workdir, name, lease, JobState(job=JOB), keep_last=5, every_s=60)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_many_parts_of_many_sessions_are_read_in_order(store_url: str) -> None:
    job = Store(store_url, **FAST).job(JOB)
    expected = b""
    for index, name in enumerate(("20260101T000000Z-a-1", "20260102T000000Z-b-2", "20260103T000000Z-c-3")):
        chunks = [lines(1000 * index + 10 * n, 10) for n in range(60)]
        put_parts(job, name, chunks)
        put_parts(job, name, [b"{}\n"] * 3, EVENTS_FILE)  # another log in the same folder
        expected += b"".join(chunks)
    job.put_bytes(layout.log_key("20260101T000000Z-a-1", f"{TRAINER_LOG}.7"), b"not a part\n")
    skipped: list[tuple[str, str]] = []
    reader = LogReader(job, TRAINER_LOG, lambda key, message: skipped.append((key, message)), workers=8)
    assert read_all(reader) == expected
    assert skipped == [(f"logs/20260101T000000Z-a-1/{TRAINER_LOG}.7",
                        f"skipped log part 'demo/logs/20260101T000000Z-a-1/{TRAINER_LOG}.7': not a log part name "
                        f"({TRAINER_LOG}.000001 or {TRAINER_LOG}.000001-000002)")]
    assert read_all(reader) == b"", "a second read showed lines again"
    job.put_bytes(layout.log_key("20260103T000000Z-c-3", part_name(TRAINER_LOG, 61)), b"late line\n")
    assert read_all(reader) == b"late line\n"


def test_a_merge_during_a_read_shows_each_line_once(store_url: str) -> None:
    """The reader listed 40 parts and has shown some when the session merges them and deletes
    the parts: the parts it has not fetched yet are gone, and it goes on inside the merged object."""
    job = Store(store_url, **FAST).job(JOB)
    chunks = [lines(10 * n, 10) for n in range(40)]
    put_parts(job, "s1", chunks)
    reader = LogReader(job, TRAINER_LOG, lambda key, message: pytest.fail(message), workers=1)
    stream = reader.read_new()
    shown = next(stream) + next(stream)
    job.put_bytes(layout.log_key("s1", merged_name(TRAINER_LOG, 1, 40)), b"".join(chunks))
    for number in range(1, 41):
        job.delete(layout.log_key("s1", part_name(TRAINER_LOG, number)))
    shown += b"".join(stream)
    assert shown == b"".join(chunks)


def test_a_session_merges_its_logs_when_it_ends(store_url: str, tmp_path: Path) -> None:
    """Ticks upload new lines as parts; the final flush merges each log's parts into one object
    and deletes them. A follower that read parts before the end reads only what came after."""
    job = Store(store_url, **FAST).job(JOB)
    sync = session(job, tmp_path / "work", "session-a")
    log = sync.workdir / TRAINER_LOG
    follower = LogReader(job, TRAINER_LOG, lambda key, message: pytest.fail(message))
    for tick in range(5):
        append(log, lines(100 * tick, 100))
        assert sync.tick() is True
    assert len(job.list(f"{layout.LOGS}/session-a")) == 5
    assert read_all(follower) == lines(0, 500)
    append(log, lines(500, 7) + b"no newline yet")
    assert sync.stop(final_flush=True) is True

    assert job.list(f"{layout.LOGS}/session-a") == [merged_name(TRAINER_LOG, 1, 6)]
    assert job.get_bytes(layout.log_key("session-a", merged_name(TRAINER_LOG, 1, 6))) == lines(0, 507)
    assert read_all(follower) == lines(500, 7)
    assert read_all(LogReader(job, TRAINER_LOG, lambda key, message: pytest.fail(message))) == lines(0, 507)
    spans = session_spans(job, "session-a", TRAINER_LOG, lambda key, message: pytest.fail(message))
    assert plan(spans, Cursor())[0].name.endswith("000001-000006")


def test_a_log_changed_after_its_parts_went_up_is_not_merged(store_url: str, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """The merged object is built from the work dir's file: if that no longer holds the bytes the
    parts hold, merging would change the log, so its parts stay."""
    job = Store(store_url, **FAST).job(JOB)
    sync = session(job, tmp_path / "work", "session-a")
    log = sync.workdir / TRAINER_LOG
    for tick in range(3):
        append(log, lines(10 * tick, 10))
        assert sync.tick() is True
    log.write_bytes(lines(0, 10, tag="LINE") + lines(10, 20))  # same size, other bytes
    with caplog.at_level(logging.WARNING, logger="runner"):
        assert sync.stop(final_flush=True) is True
    assert f"{TRAINER_LOG} changed after its parts went up" in caplog.text
    assert job.list(f"{layout.LOGS}/session-a") == [part_name(TRAINER_LOG, n) for n in (1, 2, 3)]
    assert read_all(LogReader(job, TRAINER_LOG, lambda key, message: pytest.fail(message))) == lines(0, 30)


def test_a_session_taken_over_merges_nothing(store_url: str, tmp_path: Path) -> None:
    """Once fenced, a session writes nothing more: its parts stay as they are."""
    job = Store(store_url, **FAST).job(JOB)
    sync = session(job, tmp_path / "work", "session-a")
    for tick in range(2):
        append(sync.workdir / TRAINER_LOG, lines(10 * tick, 10))
        assert sync.tick() is True
    session(Store(store_url, **FAST).job(JOB), tmp_path / "other", "session-b", take_over=True)
    assert sync.stop(final_flush=True) is False
    assert job.list(f"{layout.LOGS}/session-a") == [part_name(TRAINER_LOG, 1), part_name(TRAINER_LOG, 2)]


@pytest.mark.e2e
@pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")
def test_runner_logs_of_a_session_cut_off_while_merging(store_url: str, tmp_path: Path) -> None:
    """Session 1 wrote its merged object and died having deleted some of its parts; session 2 is
    still in parts. `runner logs` prints every line once, in order."""
    job = Store(store_url, **FAST).job(JOB)
    job.put_bytes(layout.SPEC, dump_spec(parse_spec({"name": JOB, "store": store_url})).encode())
    first = [lines(10 * n, 10, tag="one") for n in range(30)]
    put_parts(job, "s1", first)
    job.put_bytes(layout.log_key("s1", merged_name(TRAINER_LOG, 1, 30)), b"".join(first))
    for number in range(1, 12):
        job.delete(layout.log_key("s1", part_name(TRAINER_LOG, number)))
    second = [lines(10 * n, 10, tag="two") for n in range(30)]
    put_parts(job, "s2", second)
    result = subprocess.run([RUNNER, "logs", JOB, "--store", store_url], capture_output=True,
                            timeout=120, cwd=tmp_path, env=os.environ)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    assert result.stdout == b"".join(first + second)
