"""events.jsonl: appended, flushed, and read back tolerating only a torn last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.events import EventLog, read_events


def test_events_are_visible_before_close(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.emit("start", pid=1)
    log.emit("progress", epoch=0, step=3)
    events = read_events(tmp_path / "events.jsonl")
    assert [e["kind"] for e in events] == ["start", "progress"] and events[1]["step"] == 3
    log.close()


def test_torn_last_line_is_ignored_but_not_a_bad_middle(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "kind": "start"}\n{"t": 2, "ki')
    assert [e["kind"] for e in read_events(path)] == ["start"]
    path.write_text('{"t": 1, "kind": "start"}\ngarbage\n{"t": 2, "kind": "done"}\n')
    with pytest.raises(ValueError, match=":2: not an event line"):
        read_events(path)


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        EventLog(tmp_path / "e.jsonl").emit("finished")
