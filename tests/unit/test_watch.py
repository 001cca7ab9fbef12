"""`runner watch`'s decisions (runner/watch.py): which looks send a message, and what is remembered."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner.status import JobState, SessionRecord
from runner.watch import decide, keep_unsent, memory_document, memory_path, recall

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
STORE = "gs://bucket/runs"


def state(job: str, phase: str, *, beat_s_ago: float = 5, reason: str | None = None) -> JobState:
    """A status as a session writes it, with a heartbeat `beat_s_ago` seconds before NOW."""
    beat = (NOW - timedelta(seconds=beat_s_ago)).isoformat()
    return JobState(job=job, phase=phase, reason=reason, heartbeat_at=beat, sync_every_s=60, max_epochs=10,
                    epoch=3, step=120, sessions=[SessionRecord(id="s1", host="colab-vm", gpu="Tesla T4",
                                                               started_at=beat)])


def test_the_first_look_at_a_store_records_every_phase_and_sends_nothing() -> None:
    look = decide(None, {"a": state("a", "running"), "b": state("b", "failed"), "c": state("c", "done")}, NOW, STORE)
    assert look.messages == []
    assert look.remembered == {"a": "running", "b": "failed", "c": "done"}


def test_a_stale_heartbeat_is_one_interrupted_message_and_then_nothing() -> None:
    stale = {"a": state("a", "running", beat_s_ago=3 * 60 + 1)}
    look = decide({"a": "running"}, stale, NOW, STORE)
    assert [job for job, _ in look.messages] == ["a"]
    message = look.messages[0][1]
    assert message.kind == "warning" and message.title == "a: interrupted"
    assert "was running" in message.body and f"runner attach a --store {STORE}" in message.body
    assert look.remembered == {"a": "interrupted"}
    assert decide(look.remembered, stale, NOW, STORE).messages == []


def test_a_fresh_heartbeat_is_not_a_change() -> None:
    assert decide({"a": "running"}, {"a": state("a", "running", beat_s_ago=3 * 60)}, NOW, STORE).messages == []


@pytest.mark.parametrize(("old", "new", "sent"), [
    ("preparing", "running", False),  # a session starting: the person who started it knows
    ("submitted", "preparing", False),
    ("running", "done", True),
    ("running", "paused", True),
    ("running", "failed", True),
    ("paused", "preparing", True),  # resumed, maybe by someone else
    ("interrupted", "running", True),
    ("failed", "done", True),
])
def test_which_changes_send_a_message(old: str, new: str, sent: bool) -> None:
    look = decide({"j": old}, {"j": state("j", new)}, NOW, STORE)
    assert bool(look.messages) is sent
    assert look.remembered == {"j": new}
    if sent:
        assert look.messages[0][1].body.startswith(f"job j: {new}") and f"was {old}" in look.messages[0][1].body


def test_a_job_new_since_the_last_look_is_reported_only_once_it_stopped() -> None:
    look = decide({}, {"young": state("young", "running"), "quick": state("quick", "failed", reason="boom")},
                  NOW, STORE)
    assert [(job, m.title) for job, m in look.messages] == [("quick", "quick: failed (boom)")]
    assert look.remembered == {"young": "running", "quick": "failed"}


def test_a_job_without_a_readable_status_keeps_what_was_remembered() -> None:
    look = decide({"a": "running", "b": "paused"}, {"a": state("a", "running")}, NOW, STORE)
    assert look.messages == [] and look.remembered == {"a": "running", "b": "paused"}


def test_watching_the_whole_store_forgets_deleted_jobs_and_named_jobs_keep_the_rest() -> None:
    previous = {"gone": "done", "a": "running"}
    assert decide(previous, {"a": state("a", "running")}, NOW, STORE, listed=["a"]).remembered == {"a": "running"}
    assert decide(previous, {"a": state("a", "running")}, NOW, STORE).remembered == previous


def test_a_change_no_destination_heard_is_found_again_next_time() -> None:
    previous = {"a": "running"}
    look = decide(previous, {"a": state("a", "failed"), "b": state("b", "done")}, NOW, STORE)
    kept = keep_unsent(look.remembered, previous, ["a", "b"])
    assert kept == {"a": "running"}  # b was new: forgotten, so it is new (and done) again
    assert [job for job, _ in decide(kept, {"a": state("a", "failed"), "b": state("b", "done")}, NOW, STORE)
            .messages] == ["a", "b"]
    assert keep_unsent(look.remembered, previous, []) == look.remembered


def test_the_memory_file_keeps_each_store_apart() -> None:
    first = memory_document(None, STORE, {"a": "running"})
    both = memory_document(first, "/home/me/runs", {"b": "done"})
    assert recall(both, STORE) == {"a": "running"}
    assert recall(both, "/home/me/runs") == {"b": "done"}
    assert recall(both, "s3://other") is None  # never looked at: a first look
    assert recall(memory_document(both, STORE, {}), STORE) == {}


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"version": 2, "stores": {}}',
                                  b'{"version": 1, "stores": {"s": {"../x": "done"}}}',
                                  b'{"version": 1, "stores": {"s": {"a": 3}}}', b"\xff"])
def test_a_file_that_is_not_a_watch_memory_is_refused_and_replaced(data: bytes) -> None:
    with pytest.raises(ValueError):
        recall(data, "s")
    assert recall(memory_document(data, "s", {"a": "done"}), "s") == {"a": "done"}


def test_each_store_has_its_own_default_memory_file() -> None:
    home = Path("/home/me/.cache")
    assert memory_path(home, STORE) == memory_path(home, STORE)
    assert memory_path(home, STORE) != memory_path(home, "gs://bucket/other")
    assert memory_path(home, STORE).parent == home / "runner"
