"""The trainer as a supervised process: stop requests, parent death, out of memory (DESIGN §4).

The exit codes these lead to are the contract's (`contract.codes.TrainerExit`); this module says
when a stop was asked for and whether an error was CUDA running out of memory.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from types import FrameType

import torch

from contract.codes import OOM_TEXT

PR_SET_PDEATHSIG = 1

log = logging.getLogger("trainer")


class StopRequested(Exception):
    """Raised at a step boundary after the stop checkpoint is on disk; unwinds to TrainerExit.STOPPED."""


class StopFlag:
    """Set by SIGTERM, SIGINT or the parent's death; polled between training steps.

    The handler only sets a flag: the step in flight finishes, a checkpoint is written, and
    only then does the process leave, so a stop never costs more than one step.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.reason is None:
            self.reason = signal.Signals(signum).name
            log.warning("received %s: stopping after the current step", self.reason)

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        die_with_parent()
        if os.getppid() == 1:  # the parent was gone before the request took effect
            self.reason = "parent exited"


def die_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies, so no training runs unsupervised."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("could not set the parent-death signal (errno %d)", ctypes.get_errno())


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, however it surfaced: the typed error, or a RuntimeError from older code paths."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and OOM_TEXT in str(error)
