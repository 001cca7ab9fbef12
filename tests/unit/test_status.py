"""Status logic without processes: the derived phase and folding trainer events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from runner.status import JobState, apply_events, describe, effective_phase, status_document

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


def test_events_fold_into_progress_and_bests() -> None:
    state = JobState(job="j", max_epochs=10)
    apply_events(state, [
        {"kind": "start", "epoch": 0, "step": 0},
        {"kind": "progress", "epoch": 0, "step": 5, "samples_per_s": 12.5, "eta_s": 300},
        {"kind": "epoch", "epoch": 0, "step": 10, "metrics": {"val_loss": 0.5, "val_evalai": 0.2}},
        {"kind": "epoch", "epoch": 1, "step": 20, "metrics": {"val_loss": 0.6, "val_evalai": 0.3}},
        {"kind": "epoch", "epoch": 2, "step": 30, "metrics": {"val_loss": float("nan"), "val_evalai": 0.1}},
    ])
    assert (state.epoch, state.step, state.samples_per_s, state.eta_s) == (3, 30, 12.5, 300)
    assert state.best == {"val_loss": {"value": 0.5, "step": 10.0}, "val_evalai": {"value": 0.3, "step": 20.0}}


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
