"""More than one process (DESIGN §9): torchrun's launch, the process group, agreement between ranks.

`python -m trainer train --nproc-per-node N` (N > 1) is the launcher: it runs torchrun (its own
argument parser and elastic agent, standalone rendezvous) on `python -m trainer train` without
that option, once per rank. torchrun knows only success or failure, so each rank writes its own
contract exit code to `WORK/ranks/rank-K`, and the launcher folds them into the one code the
supervisor acts on (`combined_exit`): an OOM on any rank is an OOM, a stop is a stop only when
rank 0, which alone writes checkpoints, events, logs and weights, saved its checkpoint.

Inside a rank, `World` says who it is; every decision that changes what the ranks compute (stop
now, the epoch's metrics for the LR schedule and early stopping) goes through `World` so that all
ranks take it at the same step. Collectives time out (`COLLECTIVE_TIMEOUT`), and torchrun ends the
other ranks when one exits, so a crashed rank never leaves the others hanging.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from contract.codes import TrainerExit

log = logging.getLogger("trainer")

RANK_EXITS = "ranks"  # WORK/ranks/rank-K: the contract exit code rank K ended with
# Long enough for rank 0's validation pass, which the other ranks wait for; a dead peer ends the
# wait sooner (gloo sees the closed connection, torchrun stops the others).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# How long torchrun lets the ranks finish a stop (the step in flight, validation if it is running,
# rank 0's checkpoint) after a SIGTERM before it kills them.
SHUTDOWN_TIMEOUT_S = 600
SYNC_BN_BELOW = 8  # train.sync_bn unset: SyncBatchNorm when the per-process batch is below this


@dataclass
class World:
    """This process's place among the ranks; the one-process default needs no process group."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    control: Any = field(default=None, repr=False)  # the group decisions travel on (None: the default group)

    @classmethod
    def from_env(cls) -> World:
        """What torchrun tells each rank (RANK, LOCAL_RANK, WORLD_SIZE); one process without it."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                   int(os.environ.get("WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """This rank's GPU, by its local rank; the CPU as is."""
        if device.type == "cuda" and self.distributed:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def join(self, device: torch.device) -> None:
        """The process group: NCCL on GPUs, gloo on CPU. Decisions travel on a gloo group either
        way, so agreeing to stop never waits for the GPU."""
        if not self.distributed:
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        if backend != "gloo":
            self.control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any: a stop asked of one rank stops all at this step."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        return bool(value.item())

    def mean(self, value: float) -> float:
        """The mean over ranks of a per-rank figure (the epoch's training loss)."""
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total, group=self.control)
        return float(total.item()) / self.size

    def from_main(self, value: Any) -> Any:
        """Rank 0's value on every rank (validation runs on rank 0 alone)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def barrier(self) -> None:
        """Every rank waits here, e.g. for rank 0's stop checkpoint before any rank exits: torchrun
        ends all ranks as soon as one exits with a code other than 0."""
        if self.distributed:
            dist.barrier(group=self.control)


def use_sync_batchnorm(choice: bool | None, world_size: int, batch_size: int, device_type: str) -> tuple[bool, str | None]:
    """Whether BatchNorm syncs across ranks, and a note when the spec's choice cannot be followed.

    HRNet's BatchNorm on batches of 2-4 per GPU sees too few samples for good statistics, so
    unset means on below `SYNC_BN_BELOW`. torch's SyncBatchNorm needs a GPU: on CPU it stays off.
    """
    if world_size < 2:
        return False, None
    wanted = batch_size < SYNC_BN_BELOW if choice is None else choice
    if wanted and device_type != "cuda":
        return False, "train.sync_bn: SyncBatchNorm needs CUDA; on CPU each process keeps its own BatchNorm statistics"
    return wanted, None


def gpu_problem(processes: int, device: str, visible: int) -> str | None:
    """Why `processes` ranks cannot run here, or None. `train.device: cpu` runs them as CPU
    processes (gloo), which is how the tests run; otherwise each rank needs its own GPU."""
    if device == "cpu" or processes <= visible:
        return None
    seen = f"{visible} CUDA GPU{'s' if visible != 1 else ''} {'is' if visible == 1 else 'are'} visible"
    return (f"resources.gpus is {processes} but {seen} on this machine; set resources.gpus: {max(visible, 1)}, "
            f"or run where {processes} are visible (train.device: cpu runs {processes} CPU processes instead)")


def combined_exit(codes: dict[int, int | None], world_size: int) -> int:
    """The contract's exit code of an attempt whose ranks ended with `codes` (None: the rank
    reported nothing, e.g. killed by torchrun after another rank failed).

    The cause wins over its consequences: a rank that ran out of memory, filled the disk or could
    not load the checkpoint ends the others with errors or kills, which say nothing. A stop
    counts when rank 0 stopped (its checkpoint is on disk); done needs every rank done.
    """
    reported = [code for code in codes.values() if code is not None]
    for cause in (TrainerExit.OOM, TrainerExit.NO_SPACE, TrainerExit.BAD_CHECKPOINT):
        if cause in reported:
            return int(cause)
    if codes.get(0) == TrainerExit.STOPPED:
        return int(TrainerExit.STOPPED)
    if len(reported) == world_size and all(code == TrainerExit.DONE for code in reported):
        return int(TrainerExit.DONE)
    crashes = [code for code in reported if code not in (TrainerExit.DONE, TrainerExit.STOPPED)]
    return crashes[0] if crashes else 1


def rank_exit_path(workdir: Path, rank: int) -> Path:
    return workdir / RANK_EXITS / f"rank-{rank}"


def record_exit(workdir: Path, world: World, code: int) -> None:
    """Tell the launcher how this rank ended; written before the rank leaves."""
    if world.distributed:
        path = rank_exit_path(workdir, world.rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(int(code)))


def read_exits(workdir: Path, world_size: int) -> dict[int, int | None]:
    codes: dict[int, int | None] = {}
    for rank in range(world_size):
        try:
            codes[rank] = int(rank_exit_path(workdir, rank).read_text())
        except (OSError, ValueError):
            codes[rank] = None
    return codes


def launch(rank_args: list[str], processes: int, workdir: Path, device: str) -> int:
    """Run `python -m trainer RANK_ARGS` on `processes` ranks under torchrun; the combined code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from trainer.training.signals import die_with_parent

    visible = torch.cuda.device_count() if device != "cpu" else 0
    problem = gpu_problem(processes, device, visible)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return int(TrainerExit.UNRUNNABLE)
    shutil.rmtree(workdir / RANK_EXITS, ignore_errors=True)
    die_with_parent()  # a supervisor that dies takes torchrun with it, which stops the ranks
    args = parse_args(["--standalone", f"--nproc-per-node={processes}", f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
                       "--module", "trainer", *rank_args])
    try:
        run(args)
    except (ChildFailedError, SignalException) as ended:
        log.warning("torchrun: %s", str(ended).strip().splitlines()[0] if str(ended).strip() else type(ended).__name__)
    return combined_exit(read_exits(workdir, processes), processes)
