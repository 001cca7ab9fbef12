"""The syncer's timer uploads run at a lower CPU priority than the rest of the supervisor (issue
14.4): on a machine whose cores the trainer fills, a tick's copies and writes take idle time, while
the heartbeat and the lease, which keep a job alive, keep the process's priority.

Real threads and a real `LeaseHolder` on a local store; Linux only (the nice value is per thread
there, and read back from the kernel).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.lease import LeaseHolder
from runner.status import JobState
from runner.store import Store
from runner.sync import UPLOAD_NICENESS, Syncer, lower_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")

JOB = "demo"


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class RecordingSyncer(Syncer):
    """Notes the nice value of the thread each tick and each heartbeat runs on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tick_nice: list[int] = []
        self.heartbeat_nice: list[int] = []
        self.ticked = threading.Event()

    def tick(self) -> bool:
        self.tick_nice.append(nice_of_this_thread())
        done = super().tick()
        self.ticked.set()
        return done

    def _heartbeat(self) -> None:
        self.heartbeat_nice.append(nice_of_this_thread())
        super()._heartbeat()


def test_lowering_changes_the_calling_thread_alone() -> None:
    before = nice_of_this_thread()
    seen: list[int] = []

    def lowered() -> None:
        lower_thread_priority()
        seen.append(nice_of_this_thread())

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()
    assert seen == [min(before + UPLOAD_NICENESS, 19)]
    assert nice_of_this_thread() == before


def test_ticks_run_lowered_while_heartbeat_and_lease_keep_the_process_priority(tmp_path: Path) -> None:
    job = Store(str(tmp_path / "store")).job(JOB)
    lease = LeaseHolder(job, "session-a", ttl_s=600)
    lease.acquire(take_over=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    sync = RecordingSyncer(job, workdir, "session-a", lease, JobState(job=JOB), keep_last=5, every_s=1.0)
    process_nice = nice_of_this_thread()
    sync.start()
    try:
        assert sync.ticked.wait(30), "no tick within 30 s"
        deadline = time.monotonic() + 30
        while not sync.heartbeat_nice and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sync.stop(final_flush=False)
        lease.release()
    assert sync.tick_nice and set(sync.tick_nice) == {min(process_nice + UPLOAD_NICENESS, 19)}
    assert sync.heartbeat_nice and set(sync.heartbeat_nice) == {process_nice}
    assert nice_of_this_thread() == process_nice
