"""The pure decisions of running more than one process (trainer/training/distributed.py)."""

from __future__ import annotations

import pytest

from contract.codes import TrainerExit
from trainer.training.distributed import combined_exit, gpu_problem, use_sync_batchnorm

OOM, STOPPED, DONE = TrainerExit.OOM, TrainerExit.STOPPED, TrainerExit.DONE


@pytest.mark.parametrize(("codes", "expected"), [
    ({0: DONE, 1: DONE}, DONE),
    ({0: DONE, 1: None}, 1),  # a rank that reported nothing did not finish
    ({0: 1, 1: OOM}, OOM),  # rank 1 ran out of memory; rank 0's error is its consequence
    ({0: None, 1: OOM}, OOM),
    ({0: STOPPED, 1: STOPPED}, STOPPED),
    ({0: STOPPED, 1: None}, STOPPED),  # rank 0's stop checkpoint is on disk
    ({0: None, 1: STOPPED}, 1),  # rank 0 never saved: not a stop
    ({0: TrainerExit.BAD_CHECKPOINT, 1: TrainerExit.BAD_CHECKPOINT}, TrainerExit.BAD_CHECKPOINT),
    ({0: 1, 1: TrainerExit.NO_SPACE}, TrainerExit.NO_SPACE),
    ({0: None, 1: 1}, 1),
    ({0: None, 1: None}, 1),
    ({0: -9, 1: None}, -9),
])
def test_the_ranks_exits_fold_into_the_contracts_code(codes: dict, expected: int) -> None:
    assert combined_exit(codes, 2) == expected


def test_sync_batchnorm_follows_the_spec_then_the_batch_and_needs_cuda() -> None:
    assert use_sync_batchnorm(None, 1, 2, "cuda") == (False, None)  # one process: nothing to sync
    assert use_sync_batchnorm(None, 2, 4, "cuda") == (True, None)
    assert use_sync_batchnorm(None, 2, 8, "cuda") == (False, None)
    assert use_sync_batchnorm(False, 2, 2, "cuda") == (False, None)
    assert use_sync_batchnorm(True, 2, 16, "cuda") == (True, None)
    on, note = use_sync_batchnorm(None, 2, 2, "cpu")
    assert not on and note and "needs CUDA" in note


def test_more_processes_than_gpus_says_what_to_set() -> None:
    assert gpu_problem(2, "cuda", 2) is None and gpu_problem(4, "cpu", 0) is None
    problem = gpu_problem(4, "auto", 1)
    assert problem and "resources.gpus is 4 but 1 CUDA GPU is visible" in problem and "resources.gpus: 1" in problem
    assert "0 CUDA GPUs are visible" in (gpu_problem(2, "cuda", 0) or "")
