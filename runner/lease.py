"""The lease (DESIGN §6): pure decisions, and `LeaseHolder`, the one place that does lease I/O.

The lease is the highest-numbered object under `lease/`; its number is the fencing token. A
session holds the job while it can create the next number before its lease expires. The
decisions (`decide_acquire`, `next_number`, `prunable`) take no I/O and are unit-tested alone;
`LeaseHolder` reads and creates lease objects through the store and follows them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field

from runner import layout
from runner.status import now_iso
from runner.store import JobStore


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


class LeaseLost(RuntimeError):
    """Another session created the next lease object: this one must stop writing."""


class LeaseRefused(RuntimeError):
    """The job is held by another live session (the message says who and until when)."""


@dataclass
class LeaseHolder:
    """This session's claim on the job; `token` is the fencing token its writes carry."""

    store: JobStore
    session: str
    ttl_s: float
    token: int = 0
    lost: threading.Event = field(default_factory=threading.Event)

    def _numbers(self) -> list[int]:
        return [n for n in (layout.parse_lease_name(name) for name in self.store.list(layout.LEASES)) if n is not None]

    def _newest(self) -> Lease | None:
        numbers = self._numbers()
        if not numbers:
            return None
        data = self.store.get_bytes(layout.lease_key(max(numbers)))
        try:
            record = json.loads(data or b"")
            return Lease(number=max(numbers), owner=record["owner"], host=record["host"],
                         expires_at=record["expires_at"])
        except (ValueError, KeyError, TypeError):
            # Deleted or still being written (a store without atomic create): held, by an unknown
            # session, for one more lease period, so nobody takes it over on a half-written file.
            return Lease(number=max(numbers), owner="unknown", host="unknown", expires_at=time.time() + self.ttl_s)

    def _create(self, number: int, ttl_s: float | None = None) -> bool:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        record = {"owner": self.session, "host": socket.gethostname(), "expires_at": time.time() + ttl,
                  "created_at": now_iso()}
        return self.store.create_exclusive(layout.lease_key(number), json.dumps(record).encode())

    def acquire(self, take_over: bool, attempts: int = 5) -> str:
        """Create the next lease number. Losing the create to a renewal of the holder (or to
        another newcomer) means reading the newest lease again and deciding again."""
        for _ in range(attempts):
            newest = self._newest()
            decision = decide_acquire(newest, self.session, time.time(), take_over)
            if not decision.allowed:
                raise LeaseRefused(decision.message)
            number = next_number(newest)
            if self._create(number):
                self.token = number
                return decision.message
        raise LeaseRefused(f"the lease changed hands {attempts} times while this session tried to take it; try again")

    def renew(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"lease {self.token} was taken over")
        if not self._create(self.token + 1):
            self.lost.set()
            raise LeaseLost(f"another session created lease {self.token + 1}: this job was taken over")
        self.token += 1
        for old in prunable(self._numbers()):
            self.store.delete(layout.lease_key(old))

    def release(self) -> None:
        """End the claim with an already-expired lease, so the next session need not wait."""
        if not self.lost.is_set() and self._create(self.token + 1, ttl_s=0.0):
            self.token += 1
