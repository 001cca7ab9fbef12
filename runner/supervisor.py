"""The supervisor (DESIGN §1): one per session; leases the job, restores, prepares data,
launches trainer attempts, walks the OOM ladder, keeps the store in sync, and stops in time.

It never imports torch: it meets the trainer only through the attempt config, the work dir
and the exit code (DESIGN §4).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from runner import layout
from runner.attempt import attempt_config, write_attempt_config
from runner.checkpoints import RemoteManifest, restore_candidates
from runner.deadline import deadline, session_start
from runner.ladder import Rung
from runner.spec import JobSpec, dump_spec
from runner.status import JobState, now_iso
from runner.store import JobStore, StoreError
from runner.sync import LeaseHolder, Syncer, local_checkpoints
from trainer.integrity import sha256_of

log = logging.getLogger("runner")

EXIT_DONE, EXIT_OOM, EXIT_STOPPED = 0, 75, 76
POLL_S = 0.2
OOM_TEXT = "CUDA out of memory"


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
        # A lease outlives its holder by the same 3 sync intervals after which status says
        # `interrupted`: renewed on every tick, it only lapses when the session is gone.
        self.lease = LeaseHolder(store, self.session, 3 * spec.sync.every_seconds)
        self.state = JobState(job=spec.name)
        self.syncer: Syncer | None = None

    # -- session bookkeeping -------------------------------------------------------------------

    def _load_state(self) -> None:
        data = self.store.get_bytes(layout.STATE)
        if data is not None:
            self.state = JobState.model_validate_json(data)
        self.state.max_epochs = self.spec.train.max_epochs
        self.state.sync_every_s = self.spec.sync.every_seconds
        self.state.exclusive_lease = self.store.supports_exclusive_create
        self.state.session = self.session
        self.state.sessions.append({"id": self.session, "host": socket.gethostname(), "gpu": self.gpu,
                                    "started_at": now_iso(), "ended_at": None, "end_reason": None})

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
        self.state.sessions[-1].update(ended_at=now_iso(), end_reason=reason)

    # -- restore and data ------------------------------------------------------------------------

    def _restore(self) -> Path | None:
        """Download the newest remote checkpoint that verifies; older ones are the fallback."""
        manifests = []
        for name in self.store.list(layout.CHECKPOINTS):
            parsed = layout.parse_checkpoint_name(name)
            if parsed is None or parsed[1] != "json":
                continue
            data = self.store.get_bytes(f"{layout.CHECKPOINTS}/{name}")
            try:
                manifests.append(RemoteManifest(**json.loads(data or b"")))
            except (ValueError, TypeError):
                log.warning("checkpoints/%s: manifest is unreadable; skipped", name)
        assert self.syncer is not None
        for manifest in manifests:
            self.syncer.uploads.manifests[manifest.step] = manifest
        directory = self.workdir / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        for manifest in restore_candidates(manifests):
            name = f"step-{manifest.step:09d}.pt"
            local = directory / name
            if not self.store.get_file(layout.checkpoint_key(manifest.step), local):
                log.warning("checkpoints/%s is missing; trying an older checkpoint", name)
                continue
            if local.stat().st_size != manifest.size or sha256_of(local) != manifest.sha256:
                log.warning("checkpoints/%s does not match its manifest (truncated or corrupt); trying an older one", name)
                local.unlink()
                continue
            sidecar = {k: v for k, v in asdict(manifest).items() if k != "token"}
            local.with_suffix(".json").write_text(json.dumps(sidecar))
            self.syncer.uploads.checkpoints.add(manifest.step)
            self._count_lost_work(manifest.step)
            log.info("restored %s (step %d, epoch %d, token %d)", name, manifest.step, manifest.epoch, manifest.token)
            return local
        return None

    def _count_lost_work(self, restored_step: int) -> None:
        """Steps the last session reported beyond the restored checkpoint will be trained again."""
        redone = self.state.step - restored_step
        rung = self.state.rung
        if redone > 0 and rung and self.state.samples_per_s:
            samples = redone * rung["batch_size"] * rung["accumulation"]
            self.state.goodput["lost_s"] += samples / self.state.samples_per_s

    def _prepare_data(self) -> tuple[Path, Path]:
        data = self.spec.data
        cmd = [sys.executable, "-m", "trainer", "prepare", "--source", data.source, "--root", data.root,
               "--train-split", data.splits.train, "--valid-split", data.splits.valid,
               "--frames", str(data.frames), "--valid-frames", str(data.valid_frames), "--seed", str(data.seed)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"data preparation failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
        dirs = json.loads(result.stdout.strip().splitlines()[-1])
        return Path(dirs["train"]), Path(dirs["valid"])

    def _newest_local_checkpoint(self) -> Path | None:
        found = local_checkpoints(self.workdir)
        return found[-1][1] if found else None

    # -- attempts ----------------------------------------------------------------------------------

    def _launch(self, attempt: int, rung: Rung, dirs: tuple[Path, Path], resume: Path | None) -> subprocess.Popen:
        config = write_attempt_config(self.workdir, attempt, attempt_config(self.spec, rung, *dirs))
        cmd = [sys.executable, "-m", "trainer", "train", "--config", str(config), "--workdir", str(self.workdir)]
        if resume is not None:
            cmd += ["--resume", str(resume)]
        stderr = (self.workdir / f"attempt-{attempt}" / "stderr.log").open("w")
        log.info("attempt %d on rung %s%s", attempt, rung.describe(), f", resuming {resume.name}" if resume else "")
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)

    def _why_stop(self) -> str | None:
        if self.lease.lost.is_set():
            return "taken over"
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

    def _rung_record(self, index: int) -> dict:
        rung = self.ladder[index]
        return {"index": index, "batch_size": rung.batch_size, "input_size": list(rung.input_size),
                "accumulation": rung.accumulation, "activation_checkpointing": rung.activation_checkpointing}

    def run(self) -> int:
        """The whole session; returns the runner's exit code (0 also for a paused job)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        message = self.lease.acquire(self.take_over)
        log.info("session %s holds job %s (token %d): %s", self.session, self.spec.name, self.lease.token, message)
        self.store.put_bytes(layout.SPEC, dump_spec(self.spec).encode())
        self._load_state()
        self.syncer = Syncer(self.store, self.workdir, self.session, self.lease, self.state,
                             self.spec.checkpoint.keep_last, self.spec.sync.every_seconds)
        self.store.delete(layout.CANCEL)
        goodput = self.state.goodput
        try:
            t = time.monotonic()
            resume = self._restore()
            goodput["restoring_s"] += time.monotonic() - t
            self._set_phase("preparing")
            self.syncer.start()
            t = time.monotonic()
            dirs = self._prepare_data()
            goodput["preparing_s"] += time.monotonic() - t
            return self._attempts(dirs, resume)
        except Exception as error:
            self.state.error = [f"{type(error).__name__}: {error}"]
            self._set_phase("failed", str(error))
            self._end_session("failed")
            raise
        finally:
            fenced = self.lease.lost.is_set()
            flushed = self.syncer.stop(final_flush=not fenced)
            if not fenced and not flushed:
                log.error("the store stayed unreachable: some files were not uploaded; "
                          "they are still in %s and `runner attach` from this machine uploads them", self.workdir)
            if flushed:
                self.lease.release()

    def _attempts(self, dirs: tuple[Path, Path], resume: Path | None) -> int:
        index = self.state.rungs_by_gpu.get(self.gpu, 0)
        index = min(index, len(self.ladder) - 1)
        restarts = 0
        while True:
            self.state.attempt += 1
            self.state.rung = self._rung_record(index)
            self._set_phase("running")
            started = time.monotonic()
            proc = self._launch(self.state.attempt, self.ladder[index], dirs, resume)
            code, asked = self._watch(proc)
            self.state.goodput["training_s"] += time.monotonic() - started
            assert self.syncer is not None
            self.syncer.fold_events()
            resume = self._newest_local_checkpoint() or resume
            stderr = (self.workdir / f"attempt-{self.state.attempt}" / "stderr.log").read_text(errors="replace")

            if asked == "taken over":
                log.error("job %s was taken over by another session; this session wrote nothing after that",
                          self.spec.name)
                return 3
            if code == EXIT_DONE:
                self.state.rungs_by_gpu[self.gpu] = index
                self.syncer.tick()  # weights and the last checkpoint go up before `done` is visible
                self._end_session("done")
                self._set_phase("done", self._done_reason())
                return 0
            if code == EXIT_STOPPED or asked:
                self.state.rungs_by_gpu[self.gpu] = index
                phase = "cancelled" if asked == "cancelled" else "paused"
                self._end_session(asked or "stopped")
                self._set_phase(phase, asked or "stopped")
                return 0
            if code == EXIT_OOM or OOM_TEXT in stderr:
                self.state.ooms.append({"time": now_iso(), "gpu": self.gpu, "rung": self._rung_record(index)})
                if index + 1 >= len(self.ladder):
                    self._end_session("failed")
                    self._set_phase("failed", f"CUDA out of memory on the last rung ({self.ladder[index].describe()}); "
                                              "add smaller oom.batch_sizes or oom.input_sizes")
                    return 1
                index += 1
                self.state.rungs_by_gpu[self.gpu] = index
                log.warning("CUDA out of memory: stepping down to rung %d (%s)", index, self.ladder[index].describe())
                continue
            restarts += 1
            self.state.restarts += 1
            self.state.error = stderr.strip().splitlines()[-8:]
            if restarts > self.spec.resources.max_restarts:
                self._end_session("failed")
                self._set_phase("failed", f"trainer crashed {restarts} times (exit {code}); see the error in status")
                return 1
            log.warning("trainer exited with %d; restart %d of %d from the newest checkpoint",
                        code, restarts, self.spec.resources.max_restarts)

    def _done_reason(self) -> str:
        path = self.workdir / "events.jsonl"
        for line in reversed(path.read_text().splitlines() if path.exists() else []):
            event = json.loads(line)
            if event.get("kind") == "done":
                return str(event.get("reason"))
        return "finished"
