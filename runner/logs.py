"""A job's logs in the store, read back: each session uploads the work dir's logs as numbered
parts (runner/sync.py), so a log is what its session folders hold. `runner logs` prints it and
`runner plot` reads the events in it: both read it here, through `LogReader`.

One session's folder `logs/SESSION/` holds, for a log NAME (`trainer.log`, `events.jsonl`, ...):

    NAME.NNNNNN          a part: the lines one sync tick found new, numbered 1, 2, ... (six digits
                         at least; a longer number is a later part)
    NAME.NNNNNN-MMMMMM   parts NNNNNN to MMMMMM in one object, byte for byte: written when the
                         session ends, before those parts are deleted (`Syncer.stop`)

A session's log is its objects in the order of their numbers, where a merged object stands for the
parts it covers whether or not they are still there. So a session that dies between writing the
merged object and deleting its last part leaves a log that reads each line once and lacks none,
and a reader that read some parts before they were merged goes on inside the merged object from
where it got to (`Cursor`).

A part is one request: a 12 h session syncing every minute leaves 720 of them per log until it
ends, so they are fetched `WORKERS` at a time, in order.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import NamedTuple

from runner import layout
from runner.store import JobStore

Skipped = Callable[[str, str], None]  # (key of what was left out, one line saying why)

# Requests in flight at once when reading (and deleting) parts: a read from GCS waits tens of ms
# on the network, so one at a time is bound by latency; a few dozen stay well inside one aiohttp
# connection pool and the store's request rate limits.
WORKERS = 16

SPAN = re.compile(r"(\d{6,})(?:-(\d{6,}))?")


class Span(NamedTuple):
    """One object of a log in a session's folder: the parts `first` to `last` (equal for a part)."""

    first: int
    last: int
    name: str


def part_name(log: str, number: int) -> str:
    return f"{log}.{number:06d}"


def merged_name(log: str, first: int, last: int) -> str:
    return f"{log}.{first:06d}-{last:06d}"


def parse_span(log: str, name: str) -> Span | None:
    """The parts an object of `log` holds, from its name; None for anything but the two canonical
    forms, so that `trainer.log.0000001` is not a second spelling of part 1."""
    match = SPAN.fullmatch(name[len(log) + 1:]) if name.startswith(f"{log}.") else None
    if match is None:
        return None
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    canonical = merged_name(log, first, last) if match[2] else part_name(log, first)
    if first < 1 or last < first or name != canonical:
        return None
    return Span(first, last, name)


@dataclass
class Cursor:
    """How far a reader has read one session's log: through part `part`; and for each part number
    it stopped at since the last gap, the bytes read through it. Those let a merged object that
    covers parts already read be read on from where the reader got to."""

    part: int = 0
    ends: dict[int, int] = field(default_factory=lambda: {0: 0})

    def take(self, span: Span, data: bytes) -> bytes | None:
        """The bytes of `span`'s object (`data`) not read yet, moving the cursor past it; None,
        with the cursor unmoved, when its start cannot be placed among the bytes read (an object
        that overlaps the parts read another way, or is shorter than them: not what a session
        writes)."""
        read = self.ends[self.part]
        skip = 0
        if span.first <= self.part:
            start = self.ends.get(span.first - 1)
            if start is None or read - start > len(data):
                return None
            skip = read - start
        elif span.first > self.part + 1:  # parts missing before it: their bytes are not counted
            self.ends = {span.first - 1: read}
        self.part = span.last
        self.ends[span.last] = read + len(data) - skip
        return data[skip:]


def plan(spans: Iterable[Span], cursor: Cursor) -> list[Span]:
    """The objects to read after `cursor`, in order. Each step takes, among the objects that hold
    the next part and start where the cursor can place them, the one reaching furthest, so a
    merged object wins over the parts it covers and those parts are never read. Where no object
    holds the next part (a part missing from the store), reading goes on at the next one there is."""
    ordered = sorted(spans, key=lambda span: (span.first, -span.last))
    at, known = cursor.part, set(cursor.ends)
    chosen: list[Span] = []
    index = 0
    while index < len(ordered):
        best = None
        while index < len(ordered) and ordered[index].first <= at + 1:
            span = ordered[index]
            index += 1
            if span.last > at and span.first - 1 in known and (best is None or span.last > best.last):
                best = span
        if best is None:
            if index < len(ordered):
                at = ordered[index].first - 1
                known = {at}
            continue
        chosen.append(best)
        at = best.last
        known.add(at)
    return chosen


def log_sessions(job: JobStore, skipped: Skipped) -> list[str]:
    """The job's session folders under `logs/`, in the order of their ids (which begin with the
    session's start time); a folder whose name is not a session id is left out and told to `skipped`."""
    sessions = []
    for session in job.list_dirs(layout.LOGS):
        if layout.SESSION_ID.fullmatch(session):
            sessions.append(session)
        else:
            folder = f"{layout.LOGS}/{session}"
            skipped(folder, f"skipped log folder {ascii(f'{job.name}/{folder}')}: not a session id")
    return sessions


def session_spans(job: JobStore, session: str, name: str, skipped: Skipped) -> list[Span]:
    """The objects of the log `name` in one session's folder; another name that begins with
    `name.` is left out and told to `skipped`."""
    folder = f"{layout.LOGS}/{session}"
    spans = []
    for leaf in job.list(folder):
        if not leaf.startswith(f"{name}."):
            continue
        span = parse_span(name, leaf)
        if span is None:
            skipped(f"{folder}/{leaf}", f"skipped log part {ascii(f'{job.name}/{folder}/{leaf}')}: not a log part "
                                        f"name ({part_name(name, 1)} or {merged_name(name, 1, 2)})")
        else:
            spans.append(span)
    return spans


def fetch_in_order(pool: ThreadPoolExecutor, job: JobStore, keys: Iterable[str], ahead: int) -> Iterator[bytes | None]:
    """`job.get_bytes` of each key, in the order of `keys`, with up to `ahead` requests queued on
    `pool`: memory stays bounded however long the log, and the pool never waits on the caller.
    Requests not yet started are cancelled when the caller stops early."""
    queued: deque[Future[bytes | None]] = deque()
    pending = iter(keys)
    try:
        for key in pending:
            queued.append(pool.submit(job.get_bytes, key))
            if len(queued) >= ahead:
                break
        while queued:
            data = queued.popleft().result()
            for key in pending:
                queued.append(pool.submit(job.get_bytes, key))
                break
            yield data
    finally:
        for future in queued:
            future.cancel()


class LogReader:
    """One log of a job across its sessions, remembering how far it got: `read_new` gives only
    what was not read before, so `runner logs -f` asks again each interval. A part deleted after
    the listing (its session merged it meanwhile) sends the reader back to the listing, where the
    merged object now holds it."""

    def __init__(self, job: JobStore, name: str, skipped: Skipped, workers: int = WORKERS) -> None:
        self.job = job
        self.name = name
        self.skipped = skipped
        self.workers = workers
        self._cursors: dict[str, Cursor] = {}

    def read_new(self) -> Iterator[bytes]:
        """The log's bytes not read yet, in order, whole parts' lines at a time."""
        return (data for _, data in self.read_new_by_session())

    def read_new_by_session(self) -> Iterator[tuple[str, bytes]]:
        """`read_new`, each piece with the session it belongs to (`runner plot` groups by session)."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="log-read") as pool:
            for session in log_sessions(self.job, self.skipped):
                for data in self._read_session(pool, session, self._cursors.setdefault(session, Cursor())):
                    yield session, data

    def _read_session(self, pool: ThreadPoolExecutor, session: str, cursor: Cursor) -> Iterator[bytes]:
        gone: set[str] = set()  # listed, then not there or not placeable: never asked for again
        while True:
            spans = [s for s in session_spans(self.job, session, self.name, self.skipped) if s.name not in gone]
            todo = plan(spans, cursor)
            keys = [layout.log_key(session, span.name) for span in todo]
            with closing(fetch_in_order(pool, self.job, keys, 2 * self.workers)) as fetched:
                for span, key, data in zip(todo, keys, fetched):
                    new = None if data is None else cursor.take(span, data)
                    if new is None:
                        if data is not None:
                            self.skipped(key, f"skipped log object {ascii(f'{self.job.name}/{key}')}: it overlaps "
                                              "parts of the log read before it")
                        gone.add(span.name)
                        break
                    yield new
                else:
                    return
