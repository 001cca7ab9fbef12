"""Exit codes, the OOM text and fault-injection variables: how the two processes talk without I/O."""

from __future__ import annotations

from enum import IntEnum


class TrainerExit(IntEnum):
    """`python -m trainer train` exit codes; anything else is a crash."""

    DONE = 0  # max epochs or early stopping
    OOM = 75  # CUDA out of memory, caught anywhere and reported as an `oom` event
    STOPPED = 76  # stopped on request (SIGTERM/SIGINT/parent death) after saving a checkpoint
    BAD_CHECKPOINT = 77  # the resume checkpoint cannot be loaded: fall back to an older one
    NO_SPACE = 78  # no space left on the work dir's disk (the message says how much a checkpoint needs)
    UNRUNNABLE = 79  # the attempt cannot run on this machine (fewer GPUs than resources.gpus): not retried


class RunnerExit(IntEnum):
    """`runner submit|attach` exit codes."""

    OK = 0  # done or paused
    FAILED = 1
    INVALID = 2  # refused or invalid input
    TAKEN_OVER = 3
    NOT_UPLOADED = 4  # stopped with files that are only in the work dir: attach from it to upload them


# The text CUDA puts in every out-of-memory error; the supervisor also treats a crash whose
# stderr carries it as OOM, since some code paths re-raise it as a plain RuntimeError.
OOM_TEXT = "CUDA out of memory"

# Fault injection for tests (documented, never on by default).
FAULT_OOM_ABOVE = "TRAINER_FAULT_OOM_ABOVE"  # raise OOM when batch × H × W (halved with act. ckpt) exceeds it
FAULT_CRASH_AT_STEP = "TRAINER_FAULT_CRASH_AT_STEP"  # crash when this optimizer step is reached
FAULT_ENOSPC_AT_STEP = "TRAINER_FAULT_ENOSPC_AT_STEP"  # checkpoint writes from this step on hit a full disk
FAULT_RANK = "TRAINER_FAULT_RANK"  # with more than one process: the OOM and crash faults fire on this rank only

# The phrase every disk-full message carries, so the supervisor can quote the trainer's line.
NO_SPACE_TEXT = "no space left on device"
