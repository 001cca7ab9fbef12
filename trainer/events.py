"""`events.jsonl`: the trainer's machine-readable account of itself (DESIGN §4).

One JSON object per line, appended and flushed at once, so the supervisor can tail the file
while the trainer writes it and a kill -9 loses at most the line being written.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

KINDS = frozenset({"start", "progress", "epoch", "checkpoint", "oom", "done", "error"})


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


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event. Only the last line may be torn (the writer was killed mid-write);
    a bad line anywhere else means the file is not ours, and that is an error."""
    if not path.exists():
        return []
    # What follows the last newline is unfinished: still being written, or torn by a kill.
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not an event line: {error}") from None
    return events
