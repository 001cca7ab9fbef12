"""Timer uploads (DESIGN §5): checkpoints, logs, TensorBoard, weights, status, lease renewal.

One apscheduler job runs `tick` every `sync.every_seconds` in the supervisor process, so the
trainer never waits for the network, on a thread of its own at a lower CPU priority, so that on a
machine whose cores the trainer fills (Colab: 2 cores, two loader workers) its copies and writes
take only idle time from it. A tick that fails part-way leaves the rest for the next:
what is queued is derived from the work dir and what is known to be uploaded, so nothing is
dropped by an outage, only delayed. The lease is renewed first; once it is lost, nothing more
is written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import ValidationError

from contract.events import EventReader
from contract.files import (CHECKPOINTS_DIR, EVENTS_FILE, SUPERVISOR_LOG, TENSORBOARD_DIR, TRAINER_LOG, WEIGHTS_DIR,
                            list_checkpoints)
from contract.manifest import Manifest, WeightsManifest
from runner import layout
from runner.checkpoints import to_delete
from runner.lease import LeaseHolder, LeaseLost
from runner.logs import WORKERS, merged_name, part_name
from runner.status import JobState, LastCheckpoint, Uploading, apply_events, now_iso
from runner.store import JobStore, StoreError

log = logging.getLogger("runner")

LOG_FILES = (TRAINER_LOG, EVENTS_FILE, SUPERVISOR_LOG)
TICK_JOB = "tick"
TICK_EXECUTOR = "uploads"
UPLOAD_NICENESS = 10
"""Added to the tick thread's nice value: under full load it gets about a tenth of a core's share
(CFS weights), enough for uploads, while the heartbeat and the lease keep their own threads at
the process's priority."""


def lower_thread_priority(increment: int = UPLOAD_NICENESS) -> None:
    """Raise the calling thread's nice value by `increment`, leaving the process's other threads
    (and the trainer, which the main thread starts) as they are: on Linux the nice value is per
    thread, and `setpriority` on a thread id changes that thread alone (threads it starts inherit
    it). Elsewhere a thread id is no process id, the call fails, and the thread keeps its priority
    (one debug line)."""
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + increment)
    except (OSError, AttributeError) as error:
        log.debug("upload thread priority unchanged (%s)", error)


@dataclass
class Uploads:
    """What this session knows is in the store; the queue is the work dir minus this."""

    checkpoints: set[int] = field(default_factory=set)
    manifests: dict[int, Manifest] = field(default_factory=dict)
    log_offsets: dict[str, int] = field(default_factory=dict)
    log_parts: dict[str, int] = field(default_factory=dict)
    log_crcs: dict[str, int] = field(default_factory=dict)  # CRC-32 of each log's bytes sent so far
    file_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


def local_checkpoints(workdir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the work dir's checkpoints that have their manifest, oldest first."""
    return list_checkpoints(workdir / CHECKPOINTS_DIR)


class Syncer:
    """Uploads a work dir to the job's store on a timer, plus a final flush on every exit path."""

    def __init__(self, store: JobStore, workdir: Path, session: str, lease: LeaseHolder, state: JobState,
                 keep_last: int, every_s: float, before_publish: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.workdir = workdir
        self.session = session
        self.lease = lease
        self.state = state
        self.keep_last = keep_last
        self.every_s = every_s
        self.before_publish = before_publish  # brings running counters (training time) up to date
        self.uploads = Uploads()
        self.lock = threading.RLock()  # held by a tick for its whole round of uploads
        self._write_lock = threading.Lock()  # one state.json write at a time, never behind an upload
        self.cancel_requested = threading.Event()
        self.failures = 0
        self._events = EventReader(workdir / EVENTS_FILE)  # tails: only what was appended is read
        self._scheduler: BackgroundScheduler | None = None

    # -- the timer -------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        """The heartbeat alone, from the session's first phase on: a long restore or data
        preparation reads as alive, and a session cut off during them as `interrupted`."""
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(self._heartbeat, "interval", seconds=self.every_s, max_instances=1, coalesce=True)
        self._scheduler.start()

    def start(self) -> None:
        """The uploads' timer (and the heartbeat, if not started yet)."""
        if self._scheduler is None:
            self.start_heartbeat()
        assert self._scheduler is not None
        self._scheduler.add_executor(
            SchedulerThreadPool(1, pool_kwargs={"initializer": lower_thread_priority}), TICK_EXECUTOR)
        self._scheduler.add_job(self.tick, "interval", seconds=self.every_s, max_instances=1, coalesce=True,
                                id=TICK_JOB, executor=TICK_EXECUTOR)

    def stop(self, final_flush: bool) -> bool:
        """Stop the uploads timer; with `final_flush`, keep trying until everything is up or time
        runs out. The heartbeat goes on until then, so a long last upload still reads as running."""
        try:
            if self._scheduler is not None and self._scheduler.get_job(TICK_JOB) is not None:
                self._scheduler.remove_job(TICK_JOB)
            if not final_flush:
                return False
            for _ in range(5):
                if self.tick():
                    self._merge_logs()
                    return True
                time.sleep(min(self.every_s, 5.0))
            return False
        finally:
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=True)
                self._scheduler = None

    def _heartbeat(self) -> None:
        """While a tick is busy uploading (a 750 MiB checkpoint takes minutes on a slow link),
        keep `heartbeat_at` fresh, so status reads `running` with what is uploading, not
        `interrupted`. Once ticks run, a tick not in flight writes the heartbeat itself."""
        ticking = self._scheduler is not None and self._scheduler.get_job(TICK_JOB) is not None
        if ticking and self.lock.acquire(blocking=False):
            self.lock.release()
            return
        self.state.heartbeat_at = now_iso()
        try:
            self.publish()
        except StoreError as error:
            log.warning("heartbeat not written (%s); the next one tries again", error)

    def tick(self) -> bool:
        """One round of uploads; True when nothing is left queued."""
        with self.lock:
            if self.lease.lost.is_set():
                return False
            try:
                self.fold_events()
                self._upload_checkpoints()
                self._upload_logs()
                self._upload_tensorboard()
                self._upload_weights()
                self._prune_remote()
                if self.store.exists(layout.CANCEL):
                    self.cancel_requested.set()
                self.state.heartbeat_at = now_iso()
                self.publish()
                self.failures = 0
                return True
            except LeaseLost as lost:
                log.error("%s; stopping without writing anything more", lost)
                return False
            except StoreError as error:
                self.failures += 1
                log.warning("store unavailable (%s); the rest stays queued for the next tick", error)
                return False

    # -- the parts -------------------------------------------------------------------------------

    def publish(self) -> None:
        """Write state.json now; whole-object and small, safe to call from any thread. A fenced
        session writes nothing: the new holder's status is not ours to overwrite."""
        with self._write_lock:
            try:
                self.lease.check()
            except LeaseLost:
                return
            self.before_publish()
            self.store.put_bytes(layout.STATE, self.state.model_dump_json(indent=1).encode())

    def fold_events(self) -> None:
        """New trainer events into the status: progress, metrics, bests."""
        apply_events(self.state, self._events.read_new())

    def _upload_checkpoints(self) -> None:
        """Oldest first; the data object (uploaded under this session's own name, its size checked,
        moved into place while the lease holds), then the manifest with the token."""
        for step, path in local_checkpoints(self.workdir):
            if step in self.uploads.checkpoints:
                continue
            try:
                local = Manifest.read(path.with_suffix(".json"))
                self._put_file(path, layout.checkpoint_key(step), fenced=True, size=local.size)
            except FileNotFoundError:
                continue  # pruned by the trainer meanwhile: a newer one follows
            except ValidationError as error:
                log.warning("%s: the trainer's manifest is unreadable (%s); not uploaded", path.name, error)
                self.uploads.checkpoints.add(step)
                continue
            manifest = local.model_copy(update={"token": self.lease.token})
            self.store.put_bytes(layout.manifest_key(step), manifest.to_json())
            self.uploads.checkpoints.add(step)
            self.uploads.manifests[step] = manifest
            self.state.last_checkpoint = LastCheckpoint(
                step=step, token=self.lease.token,
                written_at=datetime.fromtimestamp(local.written_at, tz=timezone.utc).isoformat(timespec="seconds"),
            )

    def _put_file(self, path: Path, key: str, fenced: bool = False, size: int | None = None) -> None:
        """Upload one file, with what is uploading in the status meanwhile (the heartbeat shows it).

        `fenced` (checkpoints, weights): object names do not depend on the session, so a session
        taken over during a long upload must not land its late bytes on the new holder's object of
        the same name. The file goes up under this session's own name (`layout.upload_key`), its
        size is checked against `size` when given, and only while the lease still holds is it moved
        onto `key`, in one store operation. A lost lease or any failure deletes that upload (best
        effort) and raises on; nothing is ever uploaded under `key` itself.
        """
        uploading = self.state.uploading = Uploading(key=key, bytes=path.stat().st_size, since=now_iso())

        def progress(sent: int) -> None:
            uploading.sent = sent  # the heartbeat publishes it

        try:
            if not fenced:
                self.store.put_file(path, key, progress)
                return
            temp = layout.upload_key(key, self.session)
            try:
                self.store.put_file(path, temp, progress)
                if size is not None:
                    remote_size = self.store.size(temp)
                    if remote_size != size:
                        raise StoreError(f"{key}: uploaded {remote_size} bytes, expected {size}")
                self.lease.check()
                self.store.move(temp, key)
            except Exception:
                self._discard(temp)
                raise
        finally:
            self.state.uploading = None

    def _discard(self, key: str) -> None:
        """Delete this session's own upload that will not be moved into place; a failure is only
        logged (the object is under a name nothing reads, and the error that got here matters more)."""
        try:
            self.store.delete(key)
        except StoreError as error:
            log.warning("%s not deleted (%s); it is left under a name nothing reads", key, error)

    def _upload_logs(self) -> None:
        """New complete lines only, as numbered parts: a long log is never re-uploaded whole."""
        for name in LOG_FILES:
            path = self.workdir / name
            if not path.exists():
                continue
            offset = self.uploads.log_offsets.get(name, 0)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            if end == 0:
                continue
            part = self.uploads.log_parts.get(name, 0) + 1
            self.store.put_bytes(layout.log_key(self.session, part_name(name, part)), chunk[:end])
            self.uploads.log_offsets[name] = offset + end
            self.uploads.log_parts[name] = part
            self.uploads.log_crcs[name] = zlib.crc32(chunk[:end], self.uploads.log_crcs.get(name, 0))

    def _merge_logs(self) -> None:
        """At the session's end, each log's parts in one object (`runner.logs.merged_name`), then
        the parts deleted: `runner logs` then reads one object per session, not one per tick (720
        in a 12 h session syncing every minute). The object is the work dir's bytes that went up as
        those parts, checked against their CRC, and it is in the store before any part is deleted:
        a session cut off in between leaves both, which readers read once (runner/logs.py).

        Not on a store without exclusive create, a Drive mount: Drive syncs in the background in no
        set order, so the deletes could reach it before the merged file, and a session cut off then
        would lose those lines. A failure leaves the parts, which read as before."""
        if not self.store.supports_exclusive_create:
            return
        try:
            for name in LOG_FILES:
                count = self.uploads.log_parts.get(name, 0)
                if count < 2:
                    continue
                size = self.uploads.log_offsets[name]
                with (self.workdir / name).open("rb") as f:
                    data = f.read(size)
                if len(data) != size or zlib.crc32(data) != self.uploads.log_crcs[name]:
                    log.warning("%s changed after its parts went up; its %d parts stay as they are", name, count)
                    continue
                self.lease.check()
                self.store.put_bytes(layout.log_key(self.session, merged_name(name, 1, count)), data)
                parts = [layout.log_key(self.session, part_name(name, n)) for n in range(1, count + 1)]
                with ThreadPoolExecutor(WORKERS, thread_name_prefix="log-merge") as pool:
                    list(pool.map(self.store.delete, parts))
        except (OSError, StoreError, LeaseLost) as error:
            log.warning("logs not merged (%s); their parts stay in the store, where they read as before", error)

    def _tensorboard_files(self) -> list[tuple[Path, str]]:
        """(path, path under WORK/tensorboard) of the trainer's event files; a dot name is a
        temp file, not the trainer's."""
        root = self.workdir / TENSORBOARD_DIR
        if not root.is_dir():
            return []
        return [(path, path.relative_to(root).as_posix()) for path in sorted(root.rglob("*"))
                if path.is_file() and not path.name.startswith(".")]

    def _upload_tensorboard(self) -> None:
        """Each event file that changed (a writer appends to its own) goes to the job's one
        TensorBoard folder (`layout.tensorboard_key`), so all sessions form one run. Earlier
        sessions' files are never written over: every writer's file has a name of its own, and a
        work dir's files that an earlier session on this machine uploaded only grew since.

        A fenced session sends nothing more (the lease is checked before each file): TensorBoard
        reads a run's files in name (creation time) order and the trainer's purge_step drops the
        epochs a later file trains again, so a file the fenced session started after the
        take-over would come last and drop the new holder's epochs instead."""
        for path, relative in self._tensorboard_files():
            local = f"{TENSORBOARD_DIR}/{relative}"  # the bookkeeping and `pending` use work-dir paths
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            if self.uploads.file_sizes.get(local) == signature:
                continue
            try:
                key = layout.tensorboard_key(relative)
            except layout.UnsafeName as error:
                log.warning("%s; not uploaded", error)
                self.uploads.file_sizes[local] = signature
                continue
            self.lease.check()
            self._put_file(path, key)
            self.uploads.file_sizes[local] = signature

    def _upload_weights(self) -> None:
        """Each weights file the trainer changed, fenced like a checkpoint and checked against the
        size its manifest gives, then that manifest with the token: in the store a weights
        manifest always follows its object. A file whose manifest is missing or names another
        size is being rewritten by the trainer: the next tick takes it."""
        root = self.workdir / WEIGHTS_DIR
        for path in sorted(root.glob("*.pt")) if root.is_dir() else []:
            relative = path.relative_to(self.workdir).as_posix()
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            if self.uploads.file_sizes.get(relative) == signature:
                continue
            try:
                manifest = WeightsManifest.read(path.with_suffix(".json"))
            except (OSError, ValueError):
                continue
            if manifest.size != stat.st_size:
                continue
            if self.lease.lost.is_set():  # a fenced session sends nothing; the move checks the store
                raise LeaseLost(f"lease {self.lease.token} was taken over")
            self._put_file(path, relative, fenced=True, size=manifest.size)
            self.lease.check()
            self.store.put_bytes(path.with_suffix(".json").relative_to(self.workdir).as_posix(),
                                 manifest.model_copy(update={"token": self.lease.token}).to_json())
            self.uploads.file_sizes[relative] = signature

    def pending(self) -> list[str]:
        """Work-dir files (relative paths) the store does not have yet: what a failed final flush
        leaves only on this machine."""
        left = [path.relative_to(self.workdir).as_posix() for step, path in local_checkpoints(self.workdir)
                if step not in self.uploads.checkpoints]
        root = self.workdir / WEIGHTS_DIR
        files = [path for path in (sorted(root.rglob("*.pt")) if root.is_dir() else [])
                 if path.is_file() and not path.name.startswith(".")]
        files += [path for path, _ in self._tensorboard_files()]  # the ones `_upload_tensorboard` sends
        for path in files:
            relative = path.relative_to(self.workdir).as_posix()
            stat = path.stat()
            if self.uploads.file_sizes.get(relative) != (stat.st_size, stat.st_mtime_ns):
                left.append(relative)
        for name in LOG_FILES:
            path = self.workdir / name
            if path.exists() and path.stat().st_size > self.uploads.log_offsets.get(name, 0):
                left.append(name)
        return left

    def sweep_uploads(self) -> None:
        """Delete uploads other sessions left in flight (`layout.upload_key`): a session that died
        or was fenced between its upload and its move leaves one behind, as big as a checkpoint.
        Called once the lease is held and before the timer starts, so every one found belongs to
        another session, which can no longer move it (its lease check fails first)."""
        self.lease.check()
        for folder in layout.UPLOAD_FOLDERS:
            for name in self.store.list(folder):
                if layout.is_upload_name(name):
                    log.info("deleting %s/%s, an upload its session never finished", folder, name)
                    self.store.delete(f"{folder}/{name}")

    def _prune_remote(self) -> None:
        best_steps = [b.step for b in self.state.best.values()]
        self.lease.check()  # deleting is writing: never the new holder's checkpoints
        for manifest in to_delete(self.uploads.manifests.values(), self.keep_last, best_steps):
            self.store.delete(layout.manifest_key(manifest.step))  # the manifest first
            self.store.delete(layout.checkpoint_key(manifest.step))
            del self.uploads.manifests[manifest.step]
