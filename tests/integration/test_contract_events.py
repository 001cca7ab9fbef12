"""events.jsonl: appended, flushed, and read back tolerantly: a torn last line waits, a line that
is not an event is skipped and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.events import EventLog, EventReader, read_events


def test_events_are_visible_before_close(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.emit("start", pid=1)
    log.emit("progress", epoch=0, step=3)
    events = read_events(tmp_path / "events.jsonl")
    assert [e["kind"] for e in events] == ["start", "progress"] and events[1]["step"] == 3
    log.close()


def test_torn_last_line_is_ignored_and_a_bad_middle_line_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "kind": "start"}\n{"t": 2, "ki')
    assert [e["kind"] for e in read_events(path)] == ["start"]
    path.write_text('{"t": 1, "kind": "start"}\ngarbage\n{"t": 2, "kind": "done"}\n')
    reader = EventReader(path)
    assert [e["kind"] for e in reader.read_new()] == ["start", "done"]
    assert reader.skipped == 1


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        EventLog(tmp_path / "e.jsonl").emit("finished")
