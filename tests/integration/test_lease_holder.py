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


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"owner": "x", "host": "h", "expires_at": "tomorrow"}',
                                     b'{"owner": "x", "host": "h", "expires_at": Infinity}', b"\xff\xfe"])
def test_a_garbage_lease_holds_nothing_where_creates_are_atomic(job: JobStore, content: bytes) -> None:
    """Issue 10.8: on a store with atomic create a lease is never seen half written, so one that
    does not parse is garbage; it must not lock the job for good."""
    job.create_exclusive(layout.lease_key(1), content)
    holder = LeaseHolder(job, "session-b", ttl_s=60)
    holder.acquire(take_over=False)
    assert holder.token == 2


def test_a_fenced_session_never_renews_into_a_pruned_number(job: JobStore) -> None:
    """Issue 10.1: B takes over and renews until A's next number is pruned; A must still learn
    it was fenced instead of creating that number again."""
    a = LeaseHolder(job, "session-a", ttl_s=60)
    a.acquire(take_over=False)
    b = LeaseHolder(job, "session-b", ttl_s=60)
    b.acquire(take_over=True)
    for _ in range(3):
        b.renew()
    with pytest.raises(LeaseLost):
        a.renew()
    assert a.lost.is_set() and not a.holds()
    b.renew()
    assert b.holds()


def test_a_stale_create_is_detected_after_the_fact(job: JobStore) -> None:
    """Check after create: a number created below a newer one is not a lease held."""
    a = LeaseHolder(job, "session-a", ttl_s=60)
    a.acquire(take_over=False)
    job.create_exclusive(layout.lease_key(a.token + 5), b'{"owner": "x", "host": "h", "expires_at": 0}')
    with pytest.raises(LeaseLost):
        a.renew()


def test_lease_numbers_of_any_width(job: JobStore) -> None:
    """Issue 10.8: a lease numbered 999999999 does not lock the job for good."""
    job.create_exclusive(layout.lease_key(999_999_999), b'{"owner": "x", "host": "h", "expires_at": 0}')
    holder = LeaseHolder(job, "session-a", ttl_s=60)
    holder.acquire(take_over=False)
    assert holder.token == 1_000_000_000
    holder.renew()
    assert holder.token == 1_000_000_001 and holder.holds()
