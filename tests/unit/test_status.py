"""Status logic without processes: the derived phase and folding trainer events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from runner.status import (UNREADABLE, JobState, UnreadableState, apply_events, close_lost_sessions, describe, unsaved,
                           effective_phase, parse_iso, read_state, status_document, unreadable_document)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def test_running_with_a_stale_heartbeat_is_interrupted() -> None:
    state = JobState(job="j", phase="running", sync_every_s=60,
                     heartbeat_at=(NOW - timedelta(seconds=179)).isoformat())
    assert effective_phase(state, NOW) == "running"
    state.heartbeat_at = (NOW - timedelta(seconds=181)).isoformat()
    assert effective_phase(state, NOW) == "interrupted"
    assert status_document(state, NOW)["phase"] == "interrupted"
    state.phase = "paused"
    assert effective_phase(state, NOW) == "paused"


def test_events_fold_into_progress_and_the_trainers_bests() -> None:
    state = JobState(job="j", max_epochs=10)
    loss = {"value": 0.5, "epoch": 0.0, "step": 10.0}
    apply_events(state, [
        {"kind": "start", "epoch": 0, "step": 0},
        {"kind": "progress", "epoch": 0, "step": 5, "samples_per_s": 12.5, "eta_s": 300},
        {"kind": "epoch", "epoch": 0, "step": 10, "metrics": {"val_loss": 0.5}, "best": {"val_loss": loss}},
        {"kind": "epoch", "epoch": 1, "step": 20, "metrics": {"val_loss": 0.6, "val_evalai": 0.3},
         "best": {"val_loss": loss, "val_evalai": {"value": 0.3, "epoch": 1.0, "step": 20.0}}},
        {"kind": "epoch", "epoch": 2, "step": 30, "metrics": {"val_loss": float("nan")}},
    ])
    assert (state.epoch, state.step, state.samples_per_s, state.eta_s) == (3, 30, 12.5, 300)
    best = status_document(state, NOW)["best"]
    assert {metric: (b["value"], b["step"]) for metric, b in best.items()} == {"val_loss": (0.5, 10), "val_evalai": (0.3, 20)}


def test_status_json_keys_are_the_documented_ones() -> None:
    """The README's `runner status --json` keys: they may grow, never be renamed or removed."""
    state = JobState(job="j", rung={"index": 1, "batch_size": 2, "input_size": [720, 405], "accumulation": 2,
                                    "activation_checkpointing": True},
                     ooms=[{"time": "t", "gpu": "T4", "rung": {"index": 0, "batch_size": 4, "input_size": [720, 405]}}],
                     sessions=[{"id": "s", "host": "h", "gpu": "T4", "started_at": "t"}],
                     last_checkpoint={"step": 7, "token": 3, "written_at": "t"},
                     best={"val_loss": {"value": 0.5, "step": 10}},
                     uploading={"key": "checkpoints/step-000000012.pt", "bytes": 750 * 2**20, "since": "t"})
    document = status_document(state, NOW)
    assert set(document) == {
        "job", "phase", "reason", "epoch", "max_epochs", "step", "samples_per_s", "eta_s", "rung", "rungs_by_gpu",
        "ooms", "sessions", "session", "attempt", "restarts", "last_checkpoint", "heartbeat_at", "sync_every_s",
        "exclusive_lease", "best", "goodput", "error", "uploading", "unsaved"}
    rung_keys = {"index", "batch_size", "input_size", "accumulation", "activation_checkpointing"}
    assert set(document["rung"]) == rung_keys and set(document["ooms"][0]["rung"]) == rung_keys
    assert set(document["ooms"][0]) == {"time", "gpu", "rung"}
    assert set(document["sessions"][0]) == {"id", "host", "gpu", "started_at", "ended_at", "end_reason", "workdir",
                                            "deadline_at", "data"}
    assert set(document["last_checkpoint"]) == {"step", "token", "written_at"}
    assert set(document["best"]["val_loss"]) == {"value", "step"}
    assert set(document["goodput"]) == {"training_s", "restoring_s", "preparing_s", "lost_s"}
    assert set(document["uploading"]) == {"key", "bytes", "since", "sent"}


def test_unknown_fields_are_kept_for_newer_readers() -> None:
    state = JobState.model_validate({"job": "j", "future_field": 1})
    assert state.model_dump()["future_field"] == 1


def test_describe_names_what_a_person_needs() -> None:
    state = JobState(job="j", phase="running", heartbeat_at=NOW.isoformat(), exclusive_lease=False,
                     last_checkpoint={"step": 7, "token": 3, "written_at": NOW.isoformat()},
                     ooms=[{"time": "t", "gpu": "Tesla T4", "rung": {"batch_size": 4, "input_size": [720, 405]}}])
    rows = dict(describe(state, NOW))
    assert rows["last checkpoint"].startswith("step 7 (token 3)")
    assert "Tesla T4" in rows["oom"] and "no exclusive create" in rows["warning"]


def test_read_state_turns_bad_bytes_into_one_short_reason() -> None:
    """What `runner status` shows as `unreadable` (issue 10): never a traceback, never a long text."""
    cases = {
        b"\x00garbage": "Invalid JSON",
        b'{"job": "j", "reason": "\xff"}': "not UTF-8",
        b"[1, 2]": "object",
        b'{"job": "j", "epoch": "x"}': "epoch:",
        b'{"job": "j", "phase": "exploded"}': "phase:",
        b'{"phase": "done"}': "job:",
        b"": "Invalid JSON",
        b'{"job": "j", "rungs_by_gpu": {"' + b"\\n\\u001b[31m" * 500 + b'": "x"}}': "rungs_by_gpu",
    }
    for data, says in cases.items():
        with pytest.raises(UnreadableState, match=says) as caught:
            read_state(data)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert read_state(b'{"job": "j", "phase": "done"}').phase == "done"
    assert unreadable_document("j", "why") == {"job": "j", "phase": UNREADABLE, "error": "why"}


def test_times_that_do_not_parse_read_as_unknown() -> None:
    assert parse_iso("tomorrow") is None and parse_iso(None) is None
    assert parse_iso("2026-11-25T12:00:00") == NOW  # no zone: UTC
    state = JobState(job="j", phase="running", heartbeat_at="tomorrow", eta_s=float("inf"), samples_per_s=1.0,
                     last_checkpoint={"step": 1, "token": 1, "written_at": "soon"})
    assert effective_phase(state, NOW) == "interrupted"
    rows = dict(describe(state, NOW))
    assert rows["heartbeat"] == "never" and "speed" not in rows  # an interrupted job has no speed
    running = state.model_copy(update={"heartbeat_at": NOW.isoformat()})
    assert dict(describe(running, NOW))["speed"].endswith("ETA ?")


def test_a_session_that_never_ended_is_closed_as_lost_at_the_last_heartbeat() -> None:
    state = JobState(job="j", heartbeat_at="2026-11-25T11:58:00+00:00", sessions=[
        {"id": "a", "host": "h", "gpu": "T4", "started_at": "2026-11-25T08:00:00+00:00",
         "ended_at": "2026-11-25T09:00:00+00:00", "end_reason": "paused"},
        {"id": "b", "host": "h", "gpu": "T4", "started_at": "2026-11-25T09:05:00+00:00"},
    ])
    lost = close_lost_sessions(state)
    assert [s.id for s in lost] == ["b"]
    assert (state.sessions[1].ended_at, state.sessions[1].end_reason) == ("2026-11-25T11:58:00+00:00", "lost")
    assert state.sessions[0].end_reason == "paused"
    assert close_lost_sessions(state) == []


def test_a_session_cut_off_before_its_first_heartbeat_ends_where_it_started() -> None:
    """Its record reached the store (published with phase `preparing`) before any tick of its own:
    the job's heartbeat is the previous session's, and ending there would make its wall time negative."""
    state = JobState(job="j", heartbeat_at="2026-11-25T09:00:00+00:00", sessions=[
        {"id": "a", "host": "h", "gpu": "T4", "started_at": "2026-11-25T08:00:00+00:00",
         "ended_at": "2026-11-25T09:00:00+00:00", "end_reason": "lost"},
        {"id": "b", "host": "h", "gpu": "T4", "started_at": "2026-11-25T09:05:00+00:00"},
    ])
    assert [s.id for s in close_lost_sessions(state)] == ["b"]
    assert (state.sessions[1].ended_at, state.sessions[1].end_reason) == ("2026-11-25T09:05:00+00:00", "lost")
    never = JobState(job="j", sessions=[{"id": "c", "host": "h", "gpu": "T4", "started_at": "2026-11-25T10:00:00Z"}])
    close_lost_sessions(never)
    assert never.sessions[0].ended_at == "2026-11-25T10:00:00Z"


def test_an_interrupted_job_says_what_is_only_on_its_last_machine() -> None:
    """After a failed final flush (or a cut-off between checkpoint and upload) the store cannot know
    how far the session got: status points at the session's machine and work dir instead."""
    beat = (NOW - timedelta(minutes=10)).isoformat()
    state = JobState(job="j", phase="running", step=30, heartbeat_at=beat, sync_every_s=60,
                     last_checkpoint={"step": 6, "token": 2},
                     sessions=[{"id": "s1", "host": "colab-1", "gpu": "T4", "started_at": beat,
                                "workdir": "/content/.runner/j"}])
    assert unsaved(state, NOW) == {"after_step": 6, "session": "s1", "host": "colab-1",
                                   "workdir": "/content/.runner/j"}
    row = dict(describe(state, NOW))["not in the store"]
    assert "after step 6" in row and "colab-1" in row and "runner attach j --workdir /content/.runner/j" in row
    assert unsaved(state.model_copy(update={"heartbeat_at": NOW.isoformat()}), NOW) is None  # running: none
    assert unsaved(state.model_copy(update={"phase": "done"}), NOW) is None


def test_human_status_counts_epochs_as_the_log_does_and_shows_deadline_and_goodput() -> None:
    """Issue 11: the log says "epoch 1/3" while the first epoch runs; the session's stop time and
    time left; goodput with shares; no speed or ETA unless running."""
    state = JobState(job="j", phase="running", epoch=0, max_epochs=3, heartbeat_at=NOW.isoformat(),
                     samples_per_s=4.0, eta_s=90,
                     sessions=[{"id": "s", "host": "h", "gpu": "T4", "started_at": "t",
                                "deadline_at": (NOW + timedelta(hours=2)).isoformat()}],
                     goodput={"training_s": 300, "restoring_s": 60, "preparing_s": 240, "lost_s": 30})
    rows = dict(describe(state, NOW))
    assert rows["progress"].startswith("epoch 1/3")
    assert "(in 2:00:00)" in rows["session stops"]
    assert rows["goodput"] == ("training 0:05:00 (50%), restoring 0:01:00 (10%), preparing 0:04:00 (40%); "
                               "lost 0:00:30 (10% of training)")
    assert "speed" in rows
    done = state.model_copy(update={"phase": "done", "epoch": 3})
    rows = dict(describe(done, NOW))
    assert rows["progress"].startswith("epoch 3/3") and "speed" not in rows and "session stops" not in rows
    paused = state.model_copy(update={"phase": "paused", "epoch": 1})
    assert dict(describe(paused, NOW))["progress"].startswith("epoch 2/3") and "speed" not in dict(describe(paused, NOW))
