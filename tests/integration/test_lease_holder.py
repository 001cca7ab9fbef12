"""`LeaseHolder` against a real local store: acquire, refuse, take over, fence, release (DESIGN §6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import layout
from runner.lease import LeaseHolder, LeaseLost, LeaseRefused
from runner.store import JobStore, Store


@pytest.fixture
def job(tmp_path: Path) -> JobStore:
    return Store(str(tmp_path / "store")).job("j")


def test_a_live_lease_refuses_a_second_session_and_says_who(job: JobStore) -> None:
    first = LeaseHolder(job, "session-a", ttl_s=60)
    first.acquire(take_over=False)
    assert first.token == 1
    with pytest.raises(LeaseRefused, match="session-a"):
        LeaseHolder(job, "session-b", ttl_s=60).acquire(take_over=False)


def test_take_over_fences_the_old_holder(job: JobStore) -> None:
    first = LeaseHolder(job, "session-a", ttl_s=60)
    first.acquire(take_over=False)
    second = LeaseHolder(job, "session-b", ttl_s=60)
    second.acquire(take_over=True)
    assert second.token == 2
    with pytest.raises(LeaseLost):
        first.renew()
    assert first.lost.is_set()
    second.renew()
    assert second.token == 3


def test_release_lets_the_next_session_in_at_once(job: JobStore) -> None:
    first = LeaseHolder(job, "session-a", ttl_s=600)
    first.acquire(take_over=False)
    first.release()
    second = LeaseHolder(job, "session-b", ttl_s=60)
    assert "expired" in second.acquire(take_over=False)
    assert second.token == first.token + 1


def test_renewal_prunes_old_numbers_but_keeps_the_newest(job: JobStore) -> None:
    holder = LeaseHolder(job, "session-a", ttl_s=60)
    holder.acquire(take_over=False)
    for _ in range(5):
        holder.renew()
    numbers = sorted(n for n in map(layout.parse_lease_name, job.list(layout.LEASES)) if n is not None)
    assert numbers[-1] == holder.token == 6 and len(numbers) <= 3


def test_an_unreadable_newest_lease_counts_as_held(job: JobStore) -> None:
    job.create_exclusive(layout.lease_key(1), b"not json")
    with pytest.raises(LeaseRefused, match="unknown"):
        LeaseHolder(job, "session-b", ttl_s=60).acquire(take_over=False)
