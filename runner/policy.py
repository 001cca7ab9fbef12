"""What the supervisor does after an attempt ends (DESIGN §4, §7). Pure: no I/O, no clock.

The supervisor gathers the facts (exit code, the tail of stderr, where it stands on the ladder,
how many crashes this session has had, why it asked the trainer to stop) and carries out the one
`Action` this module returns. Every branch is a unit test, no process needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from contract.codes import NO_SPACE_TEXT, OOM_TEXT, RunnerExit, TrainerExit
from contract.config import Rung

TAKEN_OVER, CANCELLED = "taken over", "cancelled"

Kind = Literal["done", "pause", "taken_over", "step_down", "restart", "fall_back", "fail"]


@dataclass(frozen=True)
class Action:
    kind: Kind
    rung_index: int  # the rung the next attempt runs on, or the one this attempt ran on
    message: str = ""  # why: the pause reason or the failure, phrased for the person
    oom: bool = False  # the attempt ran out of CUDA memory: record it in the status
    crashed: bool = False  # the attempt crashed: count a restart and keep its stderr as the error

    @property
    def phase(self) -> str | None:
        """The job's phase once the session ends on this action; None when another attempt follows."""
        return {"done": "done", "fail": "failed", "taken_over": None,
                "pause": "cancelled" if self.message == CANCELLED else "paused"}.get(self.kind)

    @property
    def runner_exit(self) -> RunnerExit | None:
        """The runner's exit code for an action that ends the session; None for another attempt."""
        return {"done": RunnerExit.OK, "pause": RunnerExit.OK, "fail": RunnerExit.FAILED,
                "taken_over": RunnerExit.TAKEN_OVER}.get(self.kind)


def is_oom(exit_code: int, stderr_tail: str) -> bool:
    """Exit 75, or a crash whose stderr says CUDA ran out of memory (some paths re-raise it plainly)."""
    return exit_code == TrainerExit.OOM or OOM_TEXT in stderr_tail


def next_action(exit_code: int, stderr_tail: str, rung_index: int, ladder: Sequence[Rung], restarts: int,
                max_restarts: int, stop_reason: str | None) -> Action:
    """The decision after one attempt.

    `restarts` counts the crashes of this session before this attempt; `stop_reason` is why the
    supervisor asked the trainer to stop (taken over, cancelled, stopped, session limit), if it did.
    A stop request wins over the exit code: a trainer stopped mid-epoch has done what was asked.
    """
    if stop_reason == TAKEN_OVER:
        return Action("taken_over", rung_index, "another session took the job over")
    if exit_code == TrainerExit.DONE:
        return Action("done", rung_index)
    if exit_code == TrainerExit.STOPPED or stop_reason:
        return Action("pause", rung_index, stop_reason or "stopped")
    if exit_code == TrainerExit.NO_SPACE:
        said = [line for line in stderr_tail.splitlines() if NO_SPACE_TEXT in line]
        reason = said[-1].split(NO_SPACE_TEXT, 1)[1] if said else " in the work dir"
        return Action("fail", rung_index, f"{NO_SPACE_TEXT}{reason.rstrip()}")
    if exit_code == TrainerExit.UNRUNNABLE:  # e.g. fewer GPUs than resources.gpus: no retry can help
        said = [line for line in stderr_tail.splitlines() if line.strip()]
        return Action("fail", rung_index, said[-1].removeprefix("error: ") if said else
                      "the trainer cannot run on this machine")
    if exit_code == TrainerExit.BAD_CHECKPOINT:
        return Action("fall_back", rung_index,
                      "the trainer cannot load the checkpoint it was given; marking it bad and resuming "
                      "from the next older one")
    if is_oom(exit_code, stderr_tail):
        if rung_index + 1 >= len(ladder):
            return Action("fail", rung_index, oom=True, message=(
                f"CUDA out of memory on the last rung ({ladder[rung_index].describe()}); "
                "add smaller oom.batch_sizes or oom.input_sizes"))
        return Action("step_down", rung_index + 1, oom=True,
                      message=f"CUDA out of memory: stepping down to rung {rung_index + 1} "
                              f"({ladder[rung_index + 1].describe()})")
    crashes = restarts + 1
    if crashes > max_restarts:
        return Action("fail", rung_index, crashed=True,
                      message=f"trainer crashed {crashes} times (exit {exit_code}); see the error in status")
    return Action("restart", rung_index, crashed=True,
                  message=f"trainer exited with {exit_code}; restart {crashes} of {max_restarts} "
                          "from the newest checkpoint")
