"""The supervisor's decision after each attempt (runner/policy.py), every branch without a process."""

from __future__ import annotations

import pytest

from contract.codes import OOM_TEXT, RunnerExit, TrainerExit
from runner.policy import CANCELLED, TAKEN_OVER, Action, next_action
from runner.spec import parse_spec

LADDER = parse_spec({"name": "j", "train": {"batch_size": 4, "input_size": [720, 405]}}).ladder()
BOTTOM = len(LADDER) - 1


def decide(code: int, *, stderr: str = "", rung: int = 0, restarts: int = 0, max_restarts: int = 3,
           stop: str | None = None) -> Action:
    return next_action(code, stderr, rung, LADDER, restarts, max_restarts, stop)


def test_finished_training_is_done_on_its_rung() -> None:
    action = decide(TrainerExit.DONE, rung=2)
    assert (action.kind, action.rung_index, action.phase, action.runner_exit) == ("done", 2, "done", RunnerExit.OK)
    assert not action.oom and not action.crashed


@pytest.mark.parametrize("reason", ["stopped", "session limit", CANCELLED])
@pytest.mark.parametrize("code", [TrainerExit.STOPPED, -15, 1])
def test_a_requested_stop_pauses_whatever_the_exit(reason: str, code: int) -> None:
    action = decide(code, stop=reason, rung=1)
    assert (action.kind, action.message, action.rung_index, action.runner_exit) == ("pause", reason, 1, RunnerExit.OK)
    assert action.phase == ("cancelled" if reason == CANCELLED else "paused")
    assert not action.crashed


def test_an_unrequested_stop_pauses_as_stopped() -> None:
    action = decide(TrainerExit.STOPPED)
    assert (action.kind, action.message, action.phase) == ("pause", "stopped", "paused")


def test_done_wins_over_a_late_stop_request() -> None:
    assert decide(TrainerExit.DONE, stop="session limit").kind == "done"


@pytest.mark.parametrize("code", [TrainerExit.DONE, TrainerExit.STOPPED, TrainerExit.OOM, 1])
def test_taken_over_ends_the_session_whatever_the_exit(code: int) -> None:
    action = decide(code, stop=TAKEN_OVER)
    assert (action.kind, action.runner_exit, action.phase) == ("taken_over", RunnerExit.TAKEN_OVER, None)


@pytest.mark.parametrize(("code", "stderr"), [(TrainerExit.OOM, ""), (1, f"RuntimeError: {OOM_TEXT}. Tried to allocate")])
def test_oom_steps_down_one_rung(code: int, stderr: str) -> None:
    action = decide(code, stderr=stderr, rung=1)
    assert (action.kind, action.rung_index, action.oom, action.crashed) == ("step_down", 2, True, False)
    assert action.runner_exit is None and LADDER[2].describe() in action.message


def test_oom_on_the_last_rung_fails_with_the_fix() -> None:
    action = decide(TrainerExit.OOM, rung=BOTTOM)
    assert (action.kind, action.phase, action.runner_exit, action.oom) == ("fail", "failed", RunnerExit.FAILED, True)
    assert "last rung" in action.message and "oom.batch_sizes" in action.message


def test_oom_does_not_count_as_a_crash() -> None:
    assert decide(TrainerExit.OOM, restarts=3, max_restarts=3).kind == "step_down"


def test_crashes_restart_until_the_limit() -> None:
    for restarts in range(3):
        action = decide(1, restarts=restarts, rung=1)
        assert (action.kind, action.rung_index, action.crashed) == ("restart", 1, True)
        assert f"restart {restarts + 1} of 3" in action.message
    action = decide(1, restarts=3)
    assert (action.kind, action.runner_exit, action.crashed) == ("fail", RunnerExit.FAILED, True)
    assert "crashed 4 times (exit 1)" in action.message


def test_no_restarts_allowed_fails_on_the_first_crash() -> None:
    assert decide(-9, max_restarts=0).kind == "fail"


def test_a_refused_checkpoint_falls_back_without_counting_a_crash() -> None:
    action = decide(TrainerExit.BAD_CHECKPOINT, rung=1, restarts=3, max_restarts=3)
    assert (action.kind, action.rung_index, action.crashed, action.oom) == ("fall_back", 1, False, False)
    assert action.runner_exit is None and action.phase is None


def test_a_full_disk_fails_with_the_trainers_words() -> None:
    said = "2026-12-03 ERROR no space left on device in /w (needs about 18 MB for a checkpoint); free space there"
    action = decide(TrainerExit.NO_SPACE, stderr=f"epoch 1\n{said}\n")
    assert (action.kind, action.runner_exit, action.crashed) == ("fail", RunnerExit.FAILED, False)
    assert action.message == "no space left on device in /w (needs about 18 MB for a checkpoint); free space there"
    assert decide(TrainerExit.NO_SPACE).message == "no space left on device in the work dir"


def test_a_machine_that_cannot_run_the_attempt_fails_at_once_with_the_trainers_line() -> None:
    said = "error: resources.gpus is 4 but 1 CUDA GPU is visible on this machine; set resources.gpus: 1"
    action = decide(TrainerExit.UNRUNNABLE, stderr=f"loading\n{said}\n", restarts=0)
    assert (action.kind, action.phase, action.runner_exit) == ("fail", "failed", RunnerExit.FAILED)
    assert action.message == said.removeprefix("error: ") and not action.crashed
    assert decide(TrainerExit.UNRUNNABLE).message == "the trainer cannot run on this machine"
