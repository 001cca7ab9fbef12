"""The resumable sampler: an epoch's order is a pure function of (seed, epoch), startable anywhere."""

from __future__ import annotations

import pytest

from trainer.data.loader import ResumableSampler


def test_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = ResumableSampler(100, seed=seed)
        sampler.set_epoch(epoch)
        return [index for index, _ in sampler]

    assert order(1, 2) == order(1, 2)
    assert sorted(order(1, 2)) == list(range(100))
    assert order(1, 2) != order(1, 3)
    assert order(1, 2) != order(2, 2)


def test_sampler_resume_yields_the_tail_of_the_same_order() -> None:
    sampler = ResumableSampler(50, seed=4)
    sampler.set_epoch(7)
    full = list(sampler)
    assert {epoch for _, epoch in full} == {7}
    resumed = ResumableSampler(50, seed=4)
    resumed.set_epoch(7, start_index=18)
    assert list(resumed) == full[18:] and len(resumed) == 32
    with pytest.raises(ValueError):
        resumed.set_epoch(7, start_index=51)


def test_sampler_shards_ranks_disjointly() -> None:
    shards = []
    for rank in range(2):
        sampler = ResumableSampler(9, seed=0, rank=rank, world_size=2)
        sampler.set_epoch(1)
        shards.append([index for index, _ in sampler])
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0]) | set(shards[1]) == set(range(9))
    single = ResumableSampler(9, seed=0)
    single.set_epoch(1)
    order = [index for index, _ in single]
    assert shards[0][:4] + shards[1][:4] == order[0:8:2] + order[1:8:2]
