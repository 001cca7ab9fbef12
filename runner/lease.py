"""The lease (DESIGN §6): pure decisions, and `LeaseHolder`, the one place that does lease I/O.

The lease is the highest-numbered object under `lease/`; its number is the fencing token. A
session holds the job while it can create the next number before its lease expires. The
decisions (`decide_acquire`, `next_number`, `prunable`) take no I/O and are unit-tested alone;
`LeaseHolder` reads and creates lease objects through the store and follows them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler

from runner import layout
from runner.status import now_iso
from runner.store import JobStore, StoreError

log = logging.getLogger("runner")


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
    """This session's claim on the job; `token` is the fencing token its writes carry.

    Fencing never depends on a number being free: a renewal first reads the newest number and
    stops if it is above this session's token, and after creating its next number it reads again,
    so a number pruned by a newer holder and created anew by a stale one is still found out.
    `check()` is the same read, done before every write that must not come from a stale session.
    """

    store: JobStore
    session: str
    ttl_s: float
    token: int = 0
    lost: threading.Event = field(default_factory=threading.Event)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _timer: BackgroundScheduler | None = field(default=None, repr=False)

    def _numbers(self) -> list[int]:
        return [n for n in (layout.parse_lease_name(name) for name in self.store.list(layout.LEASES)) if n is not None]

    def _newest(self) -> Lease | None:
        numbers = self._numbers()
        if not numbers:
            return None
        number = max(numbers)
        data = self.store.get_bytes(layout.lease_key(number))
        try:
            record = json.loads(data or b"")
            expires_at = float(record["expires_at"])
            if expires_at != expires_at or abs(expires_at) == float("inf"):
                raise ValueError("expires_at is not a finite time")
            return Lease(number=number, owner=str(record["owner"])[:128], host=str(record["host"])[:128],
                         expires_at=expires_at)
        except (ValueError, KeyError, TypeError, AttributeError):
            if self.store.supports_exclusive_create:
                # Created whole or not at all here, so this is no lease being written: it is
                # garbage, and garbage holds nothing (it would lock the job for good).
                log.warning("%s is not a lease object; it holds nothing", layout.lease_key(number))
                return Lease(number=number, owner="unknown", host="unknown", expires_at=0.0)
            # A store without atomic create (a Drive mount) may show a lease still being written:
            # held, by an unknown session, for one more lease period.
            return Lease(number=number, owner="unknown", host="unknown", expires_at=time.time() + self.ttl_s)

    def _create(self, number: int, ttl_s: float | None = None) -> bool:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        record = {"owner": self.session, "host": socket.gethostname(), "expires_at": time.time() + ttl,
                  "created_at": now_iso()}
        return self.store.create_exclusive(layout.lease_key(number), json.dumps(record).encode())

    def _fenced(self, newest: int) -> LeaseLost:
        self.lost.set()
        return LeaseLost(f"another session holds lease {newest} (this session had {self.token}): "
                         "this job was taken over")

    def acquire(self, take_over: bool, attempts: int = 5) -> str:
        """Create the next lease number. Losing the create to a renewal of the holder (or to
        another newcomer) means reading the newest lease again and deciding again."""
        with self._lock:
            for _ in range(attempts):
                newest = self._newest()
                decision = decide_acquire(newest, self.session, time.time(), take_over)
                if not decision.allowed:
                    raise LeaseRefused(decision.message)
                number = next_number(newest)
                if self._create(number) and max(self._numbers()) == number:
                    self.token = number
                    return decision.message
            raise LeaseRefused(f"the lease changed hands {attempts} times while this session tried to take it; try again")

    def holds(self) -> bool:
        """Whether this session's token is still the newest lease number (one listing)."""
        return not self.lost.is_set() and max(self._numbers(), default=0) == self.token

    def check(self) -> None:
        """Raise LeaseLost unless this session still holds the job: call it before every write
        that a fenced session must not make (manifests, weights, state.json)."""
        with self._lock:
            if self.lost.is_set():
                raise LeaseLost(f"lease {self.token} was taken over")
            newest = max(self._numbers(), default=0)
            if newest != self.token:
                raise self._fenced(newest)

    def renew(self) -> None:
        with self._lock:
            self.check()
            if not self._create(self.token + 1):
                raise self._fenced(self.token + 1)
            newest = max(self._numbers(), default=0)
            if newest != self.token + 1:  # a newer holder's number appeared meanwhile
                raise self._fenced(newest)
            self.token += 1
            for old in prunable(self._numbers()):
                self.store.delete(layout.lease_key(old))

    def start_renewing(self, every_s: float) -> None:
        """Renew on a timer of its own, never queued behind an upload: however long a 750 MiB
        checkpoint takes to reach the store, the lease (and with it `running`) stays fresh."""
        self._timer = BackgroundScheduler(daemon=True)
        self._timer.add_job(self._renew_quietly, "interval", seconds=every_s, max_instances=1, coalesce=True)
        self._timer.start()

    def stop_renewing(self) -> None:
        """Stop the timer and wait for a renewal in flight, so `release` is the last lease write."""
        if self._timer is not None:
            self._timer.shutdown(wait=True)
            self._timer = None

    def _renew_quietly(self) -> None:
        if self.lost.is_set():
            return
        try:
            self.renew()
        except LeaseLost as lost:
            log.error("%s; stopping without writing anything more", lost)
        except StoreError as error:
            log.warning("lease not renewed (%s); the next renewal tries again", error)

    def release(self) -> None:
        """End the claim with an already-expired lease, so the next session need not wait."""
        with self._lock:
            if not self.lost.is_set() and self._create(self.token + 1, ttl_s=0.0):
                self.token += 1
