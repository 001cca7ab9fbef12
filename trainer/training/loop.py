"""One attempt of training (`python -m trainer train`), honouring the runner contract (DESIGN §4).

Writes checkpoints, events.jsonl, trainer.log, TensorBoard scalars and weights in WORK; returns
the contract's exit code: done when training is finished, OOM on CUDA out of memory, stopped
when stopped on request after saving. Under torchrun (DESIGN §9) this is one rank: rank 0 alone
writes those files, and every rank records its exit code for the launcher (distributed.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import os
import random
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from argus.engine import Engine, Events, State
from argus.metrics.metric import attach_metrics
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from contract.codes import NO_SPACE_TEXT, TrainerExit
from contract.config import AttemptConfig
from contract.events import CHECKPOINT, DONE, EPOCH, ERROR, OOM, START, EventLog
from contract.files import CHECKPOINTS_DIR, EVENTS_FILE, TENSORBOARD_DIR, TRAINER_LOG, WEIGHTS_DIR
from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.data.loader import build_dataset, make_loader
from trainer.inference.weights import WeightsMeta, write_weights
from trainer.model.metamodel import HeatmapModel
from trainer.model.pretrained import PretrainedUnavailable, load_pretrained
from trainer.training.callbacks import Progress, ResumableEarlyStopping, ResumableReduceLROnPlateau
from trainer.training.checkpoint import (BackgroundWriter, CheckpointError, checkpoint_bytes, is_disk_full,
                                         load_checkpoint)
from trainer.training.distributed import World, record_exit, use_sync_batchnorm
from trainer.training.metrics import EpochLoss, ValidationMetrics
from trainer.training.signals import StopFlag, StopRequested, is_out_of_memory
from trainer.training.state import capture, restore

log = logging.getLogger("trainer")


class ResumeRefused(Exception):
    """The checkpoint to resume from cannot be used; exits BAD_CHECKPOINT, never a crash."""

# Best weights kept in WORK/weights: metric -> (file, which direction is better).
BEST = {"val_evalai": ("best-evalai.pt", operator.gt), "val_loss": ("best-val-loss.pt", operator.lt)}


class NoEvents:
    """The event log of a rank other than 0: rank 0 alone reports the attempt."""

    def emit(self, kind: str, **fields: object) -> None:
        pass

    def close(self) -> None:
        pass


def _setup_logging(path: Path, world: World) -> None:
    """Rank 0 writes trainer.log; the other ranks say only what goes wrong, on stderr."""
    if world.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        handlers: list[logging.Handler] = [logging.FileHandler(path), logging.StreamHandler()]
    else:
        formatter = logging.Formatter(f"%(asctime)s %(levelname)s rank {world.rank}: %(message)s")
        handlers = [logging.StreamHandler()]
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO if world.is_main else logging.WARNING)
    log.propagate = False  # these handlers are the trainer's whole output
    # argus logs every exception an engine sees; a stop request is control flow, not an error.
    log.addFilter(lambda record: not (record.exc_info and isinstance(record.exc_info[1], StopRequested)))


def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible")
    return torch.device(choice)


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


class Trainer:
    """Wires data, model and argus engines for one attempt; owns checkpoint and stop policy."""

    def __init__(self, config: AttemptConfig, workdir: Path, events: EventLog | NoEvents, stop: StopFlag,
                 world: World = World()) -> None:
        if config.model.num_keypoints != NUM_KEYPOINTS:
            raise ValueError(f"model.num_keypoints is {config.model.num_keypoints}; the model predicts {NUM_KEYPOINTS}")
        self.config = config
        self.workdir = workdir
        self.events = events
        self.stop = stop
        self.world = world
        train = config.train
        _seed_everything(train.seed, train.deterministic)
        self.device = world.device(_device(train.device))
        world.join(self.device)
        rung = config.rung

        self.train_set = build_dataset(config.data.train_dir, rung.input_size, train=True, seed=train.seed)
        self.valid_set = build_dataset(config.data.valid_dir, rung.input_size, train=False, seed=train.seed)
        if len(self.train_set) < rung.batch_size:
            raise RuntimeError(f"{len(self.train_set)} training frames are fewer than one batch of {rung.batch_size}")
        loader_args = {"seed": train.seed, "num_workers": config.data.num_workers, "device": self.device}
        self.train_loader = make_loader(self.train_set, batch_size=rung.batch_size, train=True,
                                        rank=world.rank, world_size=world.size, **loader_args)
        self.valid_loader = make_loader(self.valid_set, batch_size=rung.batch_size, train=False, **loader_args)

        self.model = HeatmapModel({
            "nn_module": {"arch": config.model.arch},
            "optimizer": {"lr": train.lr},
            "loss": {"stride": train.stride, "sigma": train.sigma},
            "device": str(self.device),
        })
        self.model.logger = log
        self.model.setup(amp=train.amp, accumulation=rung.accumulation, rank=world.rank, world_size=world.size)
        net = self.model.nn_module
        if config.model.pretrained:
            load_pretrained(net.backbone, config.model.arch, config.model.pretrained)
        net.set_activation_checkpointing(rung.activation_checkpointing)
        sync_bn, note = use_sync_batchnorm(train.sync_bn, world.size, rung.batch_size, self.device.type)
        if note and world.is_main:
            log.warning("%s", note)
        if sync_bn:  # the same Parameter objects: the optimizer argus built still holds them
            self.model.nn_module = net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if train.compile:
            self.model.nn_module = torch.compile(net)
        if world.distributed:
            self.model.ddp = DistributedDataParallel(
                self.model.nn_module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        log.info("model %s: %.2f M parameters on %s; rung: batch %d, input %s, accumulation %d%s%s",
                 config.model.arch, sum(p.numel() for p in net.parameters()) / 1e6, self.device,
                 rung.batch_size, list(rung.input_size), rung.accumulation,
                 ", activation checkpointing" if rung.activation_checkpointing else "",
                 f"; {world.size} processes (batch {rung.batch_size} each{', SyncBatchNorm' if sync_bn else ''})"
                 if world.distributed else "")

        self.callbacks = {
            "early_stopping": ResumableEarlyStopping(monitor="val_loss", patience=train.early_stopping_epochs),
            "reduce_lr": ResumableReduceLROnPlateau(
                monitor="val_loss", factor=train.reduce_lr_factor, patience=train.reduce_lr_patience),
        }
        self.best: dict[str, dict[str, float]] = {}
        self.last_metrics: dict[str, float] = {}  # the newest epoch's, stored with the final weights
        self.finished: str | None = None
        self.writer = BackgroundWriter(workdir / CHECKPOINTS_DIR, config.checkpoint.keep_last) if world.is_main else None
        self.tensorboard: SummaryWriter | None = None  # opened by run(), once the resume point is known
        self.resume_samples = 0
        self.last_checkpoint = time.monotonic()

    # -- checkpoints -------------------------------------------------------------------------

    def resume_from(self, path: Path) -> None:
        """Load a checkpoint and put its state back; ResumeRefused when it cannot be used (corrupt,
        unsafe to unpickle, another format or another model), so the supervisor can fall back."""
        try:
            state, manifest = load_checkpoint(path)
            self.best, self.finished = restore(self.model, self.callbacks, state)
        except (CheckpointError, ValueError, KeyError, TypeError, RuntimeError) as error:
            if is_out_of_memory(error):
                raise
            raise ResumeRefused(f"{path.name} cannot be resumed from: {error}") from error
        self.resume_samples = self.model.position.samples
        log.info("resumed from %s: epoch %d, sample %d, step %d", path.name, self.model.position.epoch,
                 self.resume_samples, self.model.position.step)

    def save_checkpoint(self, metrics: dict[str, float], wait: bool = False) -> None:
        """Rank 0's job alone: every rank holds the same state at a step boundary."""
        if self.writer is None:
            return
        position = self.model.position
        state = capture(self.model, self.callbacks, self.best, self.finished)
        self.writer.save(state, position.step, position.epoch, position.samples, metrics,
                         on_written=lambda path, step: self.events.emit(CHECKPOINT, path=str(path), step=step))
        self.last_checkpoint = time.monotonic()
        if wait:
            self.writer.wait()

    # -- engine event handlers -----------------------------------------------------------------

    def on_epoch_start(self, state: State) -> None:
        start, self.resume_samples = self.resume_samples, 0
        self.train_loader.sampler.set_epoch(state.epoch, start)
        self.model.position.epoch, self.model.position.samples = state.epoch, start
        self.model.epoch_end = start + len(self.train_loader) * self.config.rung.batch_size * self.world.size

    def on_iteration_complete(self, state: State) -> None:
        model = self.model
        if not model.at_step_boundary() or model.position.samples >= model.epoch_end:
            return  # mid-accumulation, or the epoch's end, which has its own checkpoint
        if self.world.any(bool(self.stop)):  # all ranks stop at this same step
            self._stop_here({})
        if self.world.is_main and time.monotonic() - self.last_checkpoint >= self.config.checkpoint.every_minutes * 60:
            self.save_checkpoint({})

    def _stop_here(self, metrics: dict[str, float]) -> None:
        """Rank 0 saves the stop checkpoint while the others wait for it: torchrun would end rank
        0 as soon as another rank left with exit 76."""
        self.save_checkpoint(metrics, wait=True)
        self.world.barrier()
        raise StopRequested(self.stop.reason or "a stop asked of another rank")

    def on_epoch_complete(self, state: State) -> None:
        """After validation and the LR/early-stopping callbacks: bests, logs, checkpoint."""
        metrics = {k: float(v) for k, v in state.metrics.items()}
        position = self.model.position
        for name, (filename, better) in BEST.items():
            value = metrics.get(name)
            if value is None or not math.isfinite(value):
                continue
            previous = self.best.get(name)
            if previous is None or better(value, previous["value"]):
                self.best[name] = {"value": value, "epoch": float(position.epoch), "step": float(position.step)}
                if self.world.is_main:
                    write_weights(self.workdir / WEIGHTS_DIR / filename, self.model.nn_module.state_dict(),
                                  WeightsMeta.of(self.config, position.step, position.epoch + 1, metrics), name)
        self.last_metrics = metrics
        lr = self.model.optimizer.param_groups[0]["lr"]
        if self.tensorboard is not None:
            for name, value in {**metrics, "lr": lr}.items():
                self.tensorboard.add_scalar(name, value, position.epoch + 1)
            self.tensorboard.flush()
        log.info("epoch %d/%d done: %s, lr %.3g", position.epoch + 1, self.config.train.max_epochs,
                 ", ".join(f"{k} {v:.5g}" for k, v in sorted(metrics.items())), lr)
        self.events.emit(EPOCH, epoch=position.epoch, step=position.step, metrics=metrics, lr=lr, best=self.best)

        if state.stopped:
            self.finished = "early_stopping"
        elif position.epoch + 1 >= self.config.train.max_epochs:
            self.finished = "max_epochs"
        position.epoch, position.samples = position.epoch + 1, 0
        due = position.epoch % self.config.checkpoint.every_epochs == 0
        stop = self.world.any(bool(self.stop))
        if stop and not self.finished:
            self._stop_here(metrics)
        if due or self.finished or stop:
            self.save_checkpoint(metrics)

    # -- the run ----------------------------------------------------------------------------------

    def _validation_engine(self) -> Engine:
        engine = Engine(self.model.val_step)
        attach_metrics(engine, [EpochLoss(), ValidationMetrics(self.valid_set, self.config)])
        return engine

    def run(self) -> str:
        """Train to the end; returns why it finished (max_epochs or early_stopping)."""
        if self.finished is None:
            # Scalars are per epoch (global step = epoch + 1). An earlier attempt or session may have
            # logged epochs this one trains again (cut off before their checkpoint reached the store):
            # purge_step tells TensorBoard to drop those, so the job's files read as one run.
            if self.world.is_main:
                self.tensorboard = SummaryWriter(str(self.workdir / TENSORBOARD_DIR),
                                                 purge_step=self.model.position.epoch + 1)
            validation = self._validation_engine()
            engine = Engine(self.model.train_step)
            attach_metrics(engine, [EpochLoss()])
            engine.add_event_handler(Events.EPOCH_START, self.on_epoch_start)
            rung, world = self.config.rung, self.world
            if world.is_main:
                per_rank = -(-len(self.train_set) // world.size) // rung.batch_size * rung.batch_size
                Progress(self.events, self.config.logging.progress_every_seconds, self.config.train.max_epochs,
                         per_rank * world.size, rung.batch_size * rung.accumulation * world.size).attach(engine)
            engine.add_event_handler(Events.ITERATION_COMPLETE, self.on_iteration_complete)

            def validate(state: State) -> None:
                """On rank 0, over the whole valid split; every rank gets its metrics, so the LR
                schedule and early stopping decide the same on all."""
                if "train_loss" in state.metrics:
                    state.metrics["train_loss"] = world.mean(state.metrics["train_loss"])
                found = validation.run(self.valid_loader, state.epoch, state.epoch + 1).metrics if world.is_main else None
                state.metrics.update(world.from_main(found))

            engine.add_event_handler(Events.EPOCH_COMPLETE, validate)
            for callback in self.callbacks.values():
                callback.attach(engine)
            engine.add_event_handler(Events.EPOCH_COMPLETE, self.on_epoch_complete)
            self.events.emit(START, epoch=self.model.position.epoch, step=self.model.position.step,
                             samples=self.model.position.samples, rung=self.config.rung.model_dump(mode="json"),
                             device=str(self.device), pid=os.getpid())
            engine.run(self.train_loader, self.model.position.epoch, self.config.train.max_epochs)
            self.finished = self.finished or "max_epochs"
        if self.writer is not None:
            self.writer.wait()
            position = self.model.position
            write_weights(self.workdir / WEIGHTS_DIR / "final.pt", self.model.nn_module.state_dict(),
                          WeightsMeta.of(self.config, position.step, position.epoch, self.last_metrics))
        return self.finished

    def close(self) -> None:
        if self.writer is not None:
            self.writer.wait()
        if self.tensorboard is not None:
            self.tensorboard.close()


def finish_writes(writer: BackgroundWriter | None, error: BaseException) -> BaseException:
    """Let the checkpoint write in flight end, since snapshots taken before the failure are still
    good; the error to report. On a full disk the write in flight fails too (torch's serializer
    says `unexpected pos`), often while the training thread's own write (a log line, an event)
    fails with ENOSPC: either one makes it a full disk, and no traceback escapes from here."""
    try:
        if writer is not None:
            writer.wait()
    except CheckpointError as failed:
        if is_disk_full(failed) and not is_disk_full(error):
            return failed
        log.error("%s", failed)
    return error


def run_training(config_path: Path, workdir: Path, resume: Path | None) -> int:
    """This process's part of the attempt, its exit code recorded for torchrun's launcher."""
    world = World.from_env()
    code = 1  # what an exception leaving here means
    try:
        code = _attempt(config_path, workdir, resume, world)
        return code
    finally:
        record_exit(workdir, world, code)
        if code in (TrainerExit.DONE, TrainerExit.STOPPED):  # after a failure a peer may be gone
            world.leave()


def _attempt(config_path: Path, workdir: Path, resume: Path | None, world: World) -> int:
    """The whole attempt, mapped onto the contract's exit codes.

    Every path drains the checkpoint writer before its final event, so `done`, `oom` or
    `error` is always the last line of events.jsonl.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    _setup_logging(workdir / TRAINER_LOG, world)
    events = EventLog(workdir / EVENTS_FILE) if world.is_main else NoEvents()
    stop = StopFlag()
    stop.install()
    trainer: Trainer | None = None
    try:
        config = AttemptConfig.load(config_path)
        trainer = Trainer(config, workdir, events, stop, world)
        if resume is not None:
            trainer.resume_from(resume)
        reason = trainer.run()
        log.info("training finished: %s", reason)
        events.emit(DONE, reason=reason, step=trainer.model.position.step)
        return TrainerExit.DONE
    except PretrainedUnavailable as unavailable:  # a crash to the supervisor (retried), in one line
        log.error("%s", unavailable)
        events.emit(ERROR, message=str(unavailable)[:1000])
        return 1
    except ResumeRefused as refused:
        log.error("%s", refused)
        events.emit(ERROR, message=str(refused)[:500], checkpoint=str(resume))
        return TrainerExit.BAD_CHECKPOINT
    except StopRequested as request:
        log.info("stopped on %s after a checkpoint at step %d", request, trainer.model.position.step)
        events.emit(DONE, reason="stopped", signal=str(request), step=trainer.model.position.step)
        return TrainerExit.STOPPED
    except BaseException as error:
        if trainer is not None:
            error = finish_writes(trainer.writer, error)
        if is_out_of_memory(error):
            rung = trainer.config.rung.model_dump(mode="json") if trainer else None
            log.error("CUDA out of memory on rung %s: %s", rung, error)
            trainer = None  # drop the model and optimizer before freeing the cache
            torch.cuda.empty_cache()
            events.emit(OOM, rung=rung, message=str(error)[:500])
            return TrainerExit.OOM
        if is_disk_full(error):
            size = checkpoint_bytes(workdir / CHECKPOINTS_DIR)
            need = f"needs about {size / 2**20:.0f} MB for a checkpoint" if size else "a checkpoint needs room"
            message = f"{NO_SPACE_TEXT} in {workdir} ({need}); free space there or use another --workdir"
            log.error("%s", message)
            with contextlib.suppress(OSError):  # the event log is on the same full disk
                events.emit(ERROR, message=message)
            return TrainerExit.NO_SPACE
        tail = traceback.format_exc().strip().splitlines()[-8:]
        events.emit(ERROR, message=f"{type(error).__name__}: {error}", traceback=tail)
        raise
    finally:
        if trainer is not None:
            trainer.close()
        events.close()
