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
                     best={"val_loss": {"value": 0.5, "step": 10}})
    document = status_document(state, NOW)
    assert set(document) == {
        "job", "phase", "reason", "epoch", "max_epochs", "step", "samples_per_s", "eta_s", "rung", "rungs_by_gpu",
        "ooms", "sessions", "session", "attempt", "restarts", "last_checkpoint", "heartbeat_at", "sync_every_s",
        "exclusive_lease", "best", "goodput", "error"}
    rung_keys = {"index", "batch_size", "input_size", "accumulation", "activation_checkpointing"}
    assert set(document["rung"]) == rung_keys and set(document["ooms"][0]["rung"]) == rung_keys
    assert set(document["ooms"][0]) == {"time", "gpu", "rung"}
    assert set(document["sessions"][0]) == {"id", "host", "gpu", "started_at", "ended_at", "end_reason"}
    assert set(document["last_checkpoint"]) == {"step", "token", "written_at"}
    assert set(document["best"]["val_loss"]) == {"value", "step"}
    assert set(document["goodput"]) == {"training_s", "restoring_s", "preparing_s", "lost_s"}


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
