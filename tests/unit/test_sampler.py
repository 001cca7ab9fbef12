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


def shard(size: int, rank: int, world: int, start: int = 0, epoch: int = 3) -> list[int]:
    sampler = ResumableSampler(size, seed=5, rank=rank, world_size=world)
    sampler.set_epoch(epoch, start)
    assert len(sampler) == len(list(sampler))
    return [index for index, _ in sampler]


@pytest.mark.parametrize("size", [9, 10, 13])
def test_two_ranks_resumed_at_a_global_position_continue_their_own_sequences(size: int) -> None:
    """The start is global (steps x batch x world): each rank resumes with its own next samples."""
    for start in range(0, size, 2):
        for rank in range(2):
            assert shard(size, rank, 2, start) == shard(size, rank, 2)[start // 2:]


def test_a_resume_on_another_world_size_takes_the_rest_of_the_epoch_exactly_once() -> None:
    full = shard(12, 0, 1)
    consumed = 6  # six samples trained by two ranks, then resumed on three
    rest = [index for rank in range(3) for index in shard(12, rank, 3, consumed)]
    assert sorted(rest) == sorted(full[consumed:])
    padded = [shard(11, rank, 3, 4) for rank in range(3)]  # 7 left: padded to 9 from the order's start
    assert [len(s) for s in padded] == [3, 3, 3]
    assert set(shard(11, 0, 1)[4:]) <= set(sum(padded, []))
