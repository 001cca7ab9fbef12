"""`events.jsonl`: the trainer's machine-readable account of itself (DESIGN §4).

One JSON object per line, `{"t": unix, "kind": ...}`, appended and flushed at once, so the
supervisor can tail the file while the trainer writes it and a kill -9 loses at most the line
being written. `EventLog` is the one writer, `EventReader` the one reader: it tails by byte
offset, waits for a line still being written, and skips (and counts) a line that is not an event
instead of failing the session that reads it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

START, PROGRESS, EPOCH, CHECKPOINT, OOM, DONE, ERROR = "start", "progress", "epoch", "checkpoint", "oom", "done", "error"
KINDS = frozenset({START, PROGRESS, EPOCH, CHECKPOINT, OOM, DONE, ERROR})

Event = dict[str, Any]


class EventLog:
    """Thread-safe: the checkpoint writer thread reports through the same log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, kind: str, **fields: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        line = json.dumps({"t": time.time(), "kind": kind, **fields}, default=str) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class EventReader:
    """Reads what was appended since the last call; only complete lines count."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0  # bytes already read
        self.skipped = 0  # lines that were not events

    def read_new(self) -> list[Event]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]  # what follows the last newline is unfinished
        self.offset += len(complete)
        events = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("kind"), str):
                events.append(event)
            elif line.strip():
                self.skipped += 1
                log.warning("%s: skipped a line that is not an event: %.80r", self.path, line)
        return events


def read_events(path: Path) -> list[Event]:
    """Every complete event in the file."""
    return EventReader(path).read_new()


def last_event(path: Path, kind: str) -> Event | None:
    """The newest event of one kind, e.g. the `done` that says why training finished."""
    found = [e for e in read_events(path) if e["kind"] == kind]
    return found[-1] if found else None
