"""The supervisor (DESIGN §1): one per session; leases the job, restores, prepares data,
launches trainer attempts, walks the OOM ladder, keeps the store in sync, and stops in time.

It never imports torch: it meets the trainer only through the attempt config, the work dir
and the exit code (DESIGN §4).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from contract import events as ev
from contract.codes import NO_SPACE_TEXT, RunnerExit, TrainerExit
from contract.config import Rung
from contract.files import (ATTEMPT_CONFIG, ATTEMPT_STDERR, CHECKPOINTS_DIR, EVENTS_FILE, atomic_write, attempt_dir,
                            checkpoint_name, sha256_of)
from contract.manifest import Manifest
from runner import layout
from runner.attempt import attempt_config, prepare_command, train_command
from runner.checkpoints import restore_candidates
from runner.data_cache import DataCache, data_record, describe, read_plan
from runner.deadline import deadline, session_start
from runner.inputs import keep_inputs, local_pretrained, needs_pretrained
from runner.lease import LeaseHolder
from runner.notify import Notifier, session_end_message, step_down_message
from runner.policy import TAKEN_OVER, Action, next_action
from runner.pull import fetch_verified, remote_manifests
from runner.spec import JobSpec, dump_spec
from runner.status import (JobState, OomRecord, RungStatus, SessionRecord, UnreadableState, close_lost_sessions,
                           now_iso, read_state)
from runner.store import JobStore, StoreError
from runner.sync import Syncer, local_checkpoints

log = logging.getLogger("runner")

POLL_S = 0.2
# In the work dir: written when the final flush fails, so an attach from the same machine knows
# its checkpoints are newer than the store's and its own (not a fenced session's).
UNFLUSHED = "unflushed.json"
# In the work dir: written once the session holds the lease and its first phase is in the store.
STARTED = "started.json"
DETACHED_OUTPUT = "supervisor.out"  # a `--detach`ed supervisor's console: what it printed before its log
STDERR_TAIL_BYTES = 64 * 1024  # enough for the last traceback, which is where the OOM text appears


def gpu_name(device: str) -> str:
    """The GPU model the working rung is remembered for; `cpu` without one."""
    if device == "cpu":
        return "cpu"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "cpu"
    return out.strip().splitlines()[0] if out.strip() else "cpu"


def new_session_id() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{host}-{os.getpid()}"


def lease_ttl_s(sync_every_s: float) -> float:
    """A lease outlives its holder by the same 3 sync intervals after which status says
    `interrupted`: renewed on every tick, it only lapses when the session is gone."""
    return 3 * sync_every_s


class Supervisor:
    def __init__(self, spec: JobSpec, store: JobStore, workdir: Path, *, take_over: bool = False) -> None:
        self.spec = spec
        self.store = store
        self.workdir = workdir
        self.take_over = take_over
        self.session = new_session_id()
        self.started = datetime.now(timezone.utc)
        self.deadline = deadline(session_start(spec.session.start, self.started), spec.session.max_hours,
                                 spec.session.margin_minutes)
        self.gpu = gpu_name(spec.train.device)
        self.ladder = spec.ladder()
        self.stop_requested = threading.Event()
        self.lease = LeaseHolder(store, self.session, lease_ttl_s(spec.sync.every_seconds))
        self.state = JobState(job=spec.name)
        self.syncer: Syncer | None = None
        self.flushed = False  # the final flush got everything into the store
        self.not_uploaded: list[str] = []  # work-dir files the store never got, when it did not
        self._training_since: float | None = None  # monotonic time training was last accounted
        self._training_lock = threading.Lock()
        self.notifier = Notifier.for_session(spec.notify, os.environ)  # done, failed, paused, OOM, take-over

    # -- session bookkeeping -------------------------------------------------------------------

    def _load_state(self) -> None:
        data = self.store.get_bytes(layout.STATE)
        if data is not None:
            try:
                self.state = read_state(data)
            except UnreadableState as error:
                self.store.put_bytes(layout.UNREADABLE_STATE, data)
                log.warning("state.json in the store is unreadable (%s); starting a fresh status, its bytes kept "
                            "as %s", error, layout.UNREADABLE_STATE)
        self.state.max_epochs = self.spec.train.max_epochs
        self.state.sync_every_s = self.spec.sync.every_seconds
        self.state.exclusive_lease = self.store.supports_exclusive_create
        self.state.session = self.session
        self.state.uploading = None  # an earlier session's upload is not this one's
        for lost in close_lost_sessions(self.state):
            log.warning("session %s on %s ended without a word (last heartbeat %s): recorded as lost",
                        lost.id, lost.host, lost.ended_at)
        self.state.sessions.append(SessionRecord(id=self.session, host=socket.gethostname(), gpu=self.gpu,
                                                 started_at=now_iso(), workdir=str(self.workdir.absolute()),
                                                 deadline_at=self.deadline.isoformat(timespec="seconds")
                                                 if self.deadline else None))

    def _announce(self) -> None:
        """Tell a `--detach` parent waiting on this work dir that the session holds the lease and
        its phase is in the store (`STARTED`, naming this process, so a stale file never counts)."""
        atomic_write(self.workdir / STARTED, json.dumps(
            {"pid": os.getpid(), "session": self.session, "phase": self.state.phase}).encode())

    def _set_phase(self, phase: str, reason: str | None = None) -> None:
        self.state.phase = phase  # type: ignore[assignment]
        self.state.reason = reason
        log.info("phase %s%s", phase, f" ({reason})" if reason else "")
        if self.syncer is not None:
            try:
                self.syncer.publish()
            except StoreError as error:
                log.warning("status not written yet (%s); the next tick retries", error)

    def _end_session(self, reason: str) -> None:
        session = self.state.sessions[-1]
        session.ended_at, session.end_reason = now_iso(), reason

    # -- restore and data ------------------------------------------------------------------------

    def _restore(self) -> Path | None:
        """The newest checkpoint that verifies: from the work dir when an earlier session on this
        machine could not upload its last checkpoints (the first tick uploads them), else from
        the store, newest first, falling back to older ones."""
        manifests = remote_manifests(self.store)
        assert self.syncer is not None
        for manifest in manifests:
            self.syncer.uploads.manifests[manifest.step] = manifest
        left = self._left_behind(manifests)
        if left is not None:
            self._count_lost_work(left[0])
            log.info("resuming from %s in the work dir: the last session could not upload it; it goes up first",
                     left[1].name)
            return left[1]
        directory = self.workdir / CHECKPOINTS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        for manifest in restore_candidates(manifests):
            name = checkpoint_name(manifest.step)
            local = directory / name
            problem = fetch_verified(self.store, layout.checkpoint_key(manifest.step), local, manifest.size,
                                     manifest.sha256)
            if problem:
                log.warning("%s; trying an older checkpoint", problem)
                continue
            atomic_write(local.with_suffix(".json"), manifest.model_copy(update={"token": None}).to_json())
            self.syncer.uploads.checkpoints.add(manifest.step)
            self._count_lost_work(manifest.step)
            log.info("restored %s (step %d, epoch %d, token %s)", name, manifest.step, manifest.epoch, manifest.token)
            return local
        return None

    def _left_behind(self, remote: list[Manifest]) -> tuple[int, Path] | None:
        """(step, path) of the newest work-dir checkpoint that a session on this machine could not
        upload, when it is newer than the store's and nobody has written the job since that
        session: a fenced session's leftovers never win over the new holder's checkpoints."""
        record = self.workdir / UNFLUSHED
        try:
            left = json.loads(record.read_text())
            token = int(left["token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any((m.token or 0) > token for m in remote):
            log.warning("the store has checkpoints newer than this work dir's last session; its leftovers are not used")
            return None
        known = {m.step: m.sha256 for m in remote}
        newest_remote = max(known, default=-1)
        newer: list[tuple[int, Path, Manifest]] = []  # only in the work dir, oldest first
        for step, path in local_checkpoints(self.workdir):
            try:
                sidecar = Manifest.read(path.with_suffix(".json"))
            except (OSError, ValueError):
                continue
            if known.get(step) == sidecar.sha256:
                self.syncer.uploads.checkpoints.add(step)  # already in the store
            elif step > newest_remote:
                newer.append((step, path, sidecar))
        for step, path, sidecar in reversed(newer):
            if path.stat().st_size == sidecar.size and sha256_of(path) == sidecar.sha256:
                return step, path
        return None

    def _count_lost_work(self, restored_step: int) -> None:
        """Steps the last session reported beyond the restored checkpoint will be trained again."""
        redone = self.state.step - restored_step
        rung = self.state.rung
        if redone > 0 and rung and self.state.samples_per_s:
            samples = redone * rung.batch_size * rung.accumulation
            self.state.goodput.lost_s += samples / self.state.samples_per_s

    def _prepare_data(self) -> tuple[Path, Path]:
        """Restore what the store's data cache has, let the trainer prepare the rest, add to the
        cache what it lacked; the session's `data` status and one log line say which was which."""
        plan = read_plan(prepare_command(self.spec.data, plan=True))
        cache = DataCache(self.store.data(plan.cache), self.spec.name, self.session) if plan else None
        outcomes = cache.restore(plan) if cache and plan else []
        result = subprocess.run(prepare_command(self.spec.data), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"data preparation failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
        dirs = json.loads(result.stdout.strip().splitlines()[-1])
        derived = sum(int(split["derived"]) for split in dirs.get("keypoints", {}).values())
        uploaded = cache.upload(outcomes, self.lease.check) if cache else []
        record = data_record(plan, outcomes, uploaded, derived)
        self.state.sessions[-1].data = record
        log.info("data: %s", describe(record))
        return Path(dirs["train"]), Path(dirs["valid"])

    def _newest_local_checkpoint(self) -> Path | None:
        found = local_checkpoints(self.workdir)
        return found[-1][1] if found else None

    # -- attempts ----------------------------------------------------------------------------------

    def _launch(self, attempt: int, rung: Rung, dirs: tuple[Path, Path], resume: Path | None) -> subprocess.Popen:
        folder = attempt_dir(self.workdir, attempt)
        config = folder / ATTEMPT_CONFIG
        pretrained = self.spec.model.pretrained
        if needs_pretrained(pretrained, resume is not None):
            assert pretrained is not None
            pretrained = local_pretrained(pretrained, self.store, self.workdir)
        else:
            pretrained = None
        attempt_config(self.spec, rung, *dirs, pretrained=pretrained).save(config)
        cmd = train_command(config, self.workdir, resume, self.spec.resources.gpus)
        stderr = (folder / ATTEMPT_STDERR).open("w")
        log.info("attempt %d on rung %s%s", attempt, rung.describe(), f", resuming {resume.name}" if resume else "")
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)

    def _why_stop(self) -> str | None:
        if self.lease.lost.is_set():
            return TAKEN_OVER
        if self.syncer is not None and self.syncer.cancel_requested.is_set():
            return "cancelled"
        if self.stop_requested.is_set():
            return "stopped"
        if self.deadline is not None and datetime.now(timezone.utc) >= self.deadline:
            return "session limit"
        return None

    def _watch(self, proc: subprocess.Popen) -> tuple[int, str | None]:
        """Wait for the attempt; ask it to stop (SIGTERM: checkpoint, exit 76) when we must."""
        asked: str | None = None
        while proc.poll() is None:
            reason = self._why_stop()
            if reason and asked is None:
                asked = reason
                log.info("stopping the trainer: %s", reason)
                proc.send_signal(signal.SIGTERM)
            time.sleep(POLL_S)
        return proc.returncode, asked

    def _rung_status(self, index: int) -> RungStatus:
        return RungStatus(index=index, **self.ladder[index].model_dump())

    def run(self) -> int:
        """The whole session; returns the runner's exit code (0 also for a paused job)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        message = self.lease.acquire(self.take_over)
        log.info("session %s holds job %s (token %d): %s", self.session, self.spec.name, self.lease.token, message)
        self.lease.start_renewing(self.spec.sync.every_seconds)  # also through a long restore
        try:
            code = self._session()
            if self.not_uploaded:  # nothing is called done, or paused, before it is in the store
                return int(RunnerExit.NOT_UPLOADED)
            return code
        finally:
            self.lease.stop_renewing()  # the release must be the last lease object
            if self.syncer is None or self.flushed:  # failed before any upload, or all is up
                self._release()
            self.notifier.close()  # the session's last message goes out before the process ends

    def _release(self) -> None:
        try:
            self.lease.release()
        except StoreError as error:
            log.warning("lease not released (%s); it expires by itself in %.0f s", error, self.lease.ttl_s)

    def _session(self) -> int:
        self.store.put_bytes(layout.SPEC, dump_spec(self.spec).encode())
        self._load_state()
        self.syncer = Syncer(self.store, self.workdir, self.session, self.lease, self.state,
                             self.spec.checkpoint.keep_last, self.spec.sync.every_seconds,
                             before_publish=self._account_training)
        if self.store.exists(layout.CANCEL):  # asked while no session ran: honoured now, nothing trained
            self._end_session("cancelled")
            self._set_phase("cancelled", "cancel requested")
            self._announce()
            self.syncer.stop(final_flush=False)
            self.flushed = True
            return int(RunnerExit.OK)
        self.syncer.sweep_uploads()
        keep_inputs(self.spec.model.pretrained, self.store)
        self.syncer.fold_events()  # a work dir kept from an earlier session says how far it got
        goodput = self.state.goodput
        try:
            self.state.heartbeat_at = now_iso()
            self._set_phase("preparing")
            self.syncer.start_heartbeat()
            self._announce()
            t = time.monotonic()
            resume = self._restore()
            goodput.restoring_s += time.monotonic() - t
            self.syncer.start()
            t = time.monotonic()
            dirs = self._prepare_data()
            goodput.preparing_s += time.monotonic() - t
            return self._attempts(dirs, resume)
        except Exception as error:
            self.state.error = [f"{type(error).__name__}: {error}"]
            self._set_phase("failed", str(error))
            self._end_session("failed")
            raise
        finally:
            fenced = self.lease.lost.is_set()
            self.flushed = self.syncer.stop(final_flush=not fenced)
            if self.flushed:
                (self.workdir / UNFLUSHED).unlink(missing_ok=True)
            elif not fenced:
                self.not_uploaded = self.syncer.pending()
                atomic_write(self.workdir / UNFLUSHED, json.dumps(
                    {"session": self.session, "token": self.lease.token, "files": self.not_uploaded}).encode())
                log.error("the store stayed unreachable: %d file(s) are only in %s (%s); run `runner attach %s "
                          "--workdir %s` on this machine to upload them and go on", len(self.not_uploaded),
                          self.workdir, ", ".join(self.not_uploaded[:5]), self.spec.name, self.workdir)
            ended = session_end_message(self.state, self.store.url, taken_over=fenced, not_uploaded=self.not_uploaded,
                                        workdir=str(self.workdir))
            if ended is not None:  # after the final flush: `done` means in the store
                self.notifier.send(ended)

    def _attempts(self, dirs: tuple[Path, Path], resume: Path | None) -> int:
        """Launch attempts and carry out what `policy.next_action` decides after each."""
        index = min(self.state.rungs_by_gpu.get(self.gpu, 0), len(self.ladder) - 1)
        restarts = 0
        while True:
            self.state.attempt += 1
            self.state.rung = self._rung_status(index)
            self._set_phase("running")
            self._training_since = time.monotonic()
            try:
                proc = self._launch(self.state.attempt, self.ladder[index], dirs, resume)
            except OSError as error:  # the work dir's disk is full before the trainer even starts
                if error.errno != errno.ENOSPC:
                    raise
                code, asked = TrainerExit.NO_SPACE, None
                stderr = f"{NO_SPACE_TEXT} in {self.workdir} (writing attempt {self.state.attempt}'s config)"
            else:
                code, asked = self._watch(proc)
                stderr = self._stderr_tail(self.state.attempt)
            if self.lease.lost.is_set():  # fenced while the trainer was finishing on its own
                asked = TAKEN_OVER
            self._account_training()
            self._training_since = None
            assert self.syncer is not None
            self.syncer.fold_events()
            resume = self._newest_local_checkpoint() or resume
            action = next_action(code, stderr, index, self.ladder, restarts, self.spec.resources.max_restarts, asked)
            exit_code = self._carry_out(action, index, stderr)
            if exit_code is not None:
                return exit_code
            if action.crashed:
                restarts += 1
            if action.kind == "fall_back" and resume is not None:
                resume = self._fall_back(resume)
            index = action.rung_index

    def _account_training(self) -> None:
        """Add the attempt's time since the last account to `goodput.training_s`. Called on every
        status write, so a session that is killed has its training time in the store up to its
        last tick."""
        with self._training_lock:
            if self._training_since is not None:
                now = time.monotonic()
                self.state.goodput.training_s += now - self._training_since
                self._training_since = now

    def _carry_out(self, action: Action, index: int, stderr: str) -> int | None:
        """Record the action in the status; the runner's exit code when the session ends on it.

        `index` is the rung the attempt ran on; `action.rung_index` the one the next would run on.
        """
        if action.oom:
            self.state.ooms.append(OomRecord(time=now_iso(), gpu=self.gpu, rung=self._rung_status(index)))
        if action.crashed:
            self.state.restarts += 1
            self.state.error = stderr.strip().splitlines()[-8:]
        if action.kind == "taken_over":
            log.error("job %s was taken over by another session; this session wrote nothing after that",
                      self.spec.name)
            return int(action.runner_exit)
        if action.kind in ("step_down", "restart", "fall_back"):
            if action.kind == "step_down":
                self.state.rungs_by_gpu[self.gpu] = action.rung_index
                self.notifier.send(step_down_message(self.spec.name, self.gpu, index, self.ladder, action.rung_index))
            log.warning("%s", action.message)
            return None
        if action.kind in ("done", "pause"):
            self.state.rungs_by_gpu[self.gpu] = action.rung_index
        if action.kind == "done":
            assert self.syncer is not None
            self.syncer.tick()  # weights and the last checkpoint go up before `done` is visible
            if self.lease.lost.is_set():
                log.error("job %s was taken over by another session while finishing; this session wrote "
                          "nothing after that", self.spec.name)
                return int(RunnerExit.TAKEN_OVER)
            self._end_session("done")
            self._set_phase("done", self._done_reason())
        else:
            self._end_session(action.message if action.kind == "pause" else "failed")
            self._set_phase(action.phase, action.message)
        return int(action.runner_exit)

    def _fall_back(self, refused: Path) -> Path | None:
        """Mark the refused checkpoint bad in the store (a small object: no data is deleted there),
        drop its local copy, and pick the next older checkpoint, local or remote."""
        parsed = layout.parse_checkpoint_name(refused.name)
        if parsed is not None:
            self.lease.check()
            marker = {"step": parsed[0], "session": self.session, "token": self.lease.token, "marked_at": now_iso()}
            self.store.put_bytes(layout.bad_marker_key(parsed[0]), json.dumps(marker).encode())
        refused.unlink(missing_ok=True)
        refused.with_suffix(".json").unlink(missing_ok=True)
        fallback = self._newest_local_checkpoint() or self._restore()
        log.warning("checkpoint %s refused by the trainer; resuming from %s", refused.name,
                    fallback.name if fallback else "the start (no older checkpoint)")
        return fallback

    def _stderr_tail(self, attempt: int) -> str:
        path = attempt_dir(self.workdir, attempt) / ATTEMPT_STDERR
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
            return f.read().decode(errors="replace")

    def _done_reason(self) -> str:
        done = ev.last_event(self.workdir / EVENTS_FILE, ev.DONE)
        return str(done.get("reason")) if done else "finished"
