"""Lease decisions (DESIGN §6). Pure: the store does the exclusive create, this decides.

The lease is the highest-numbered object under `lease/`; its number is the fencing token. A
session holds the job while it can create the next number before its lease expires.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    number: int
    owner: str  # session id
    host: str
    expires_at: float  # unix seconds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    message: str
    wait_s: float = 0.0


def decide_acquire(newest: Lease | None, session: str, now: float, take_over: bool) -> Decision:
    """May `session` take the job whose newest lease is `newest`?"""
    if newest is None:
        return Decision(True, "no lease yet")
    if newest.owner == session:
        return Decision(True, "this session already holds the lease")
    remaining = newest.expires_at - now
    if remaining <= 0:
        return Decision(True, f"the lease of session {newest.owner} on {newest.host} expired {-remaining:.0f} s ago")
    if take_over:
        return Decision(True, f"taking over from session {newest.owner} on {newest.host} (--take-over)")
    return Decision(
        False,
        f"session {newest.owner} on {newest.host} holds this job for another {remaining:.0f} s "
        f"(token {newest.number}); if that session is gone, wait for it to expire or use --take-over",
        wait_s=remaining,
    )


def next_number(newest: Lease | None) -> int:
    return 1 if newest is None else newest.number + 1


def prunable(numbers: list[int], keep: int = 3) -> list[int]:
    """Old lease objects to delete: all but the newest `keep` (the newest is the token)."""
    return sorted(numbers)[:-keep] if len(numbers) > keep else []
