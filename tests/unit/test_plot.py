"""`runner plot`'s pure half (runner/plot.py): events, session by session -> series, marks and best
points. No store, no matplotlib drawing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.plot import (DEFAULT_METRICS, OomStep, Point, UnknownMetric, best_point, build, choose_metrics, goal,
                         headline, parse_events, parse_metric_list, rung_label, summary)
from runner.status import JobState, SessionRecord

RUNG_4 = {"batch_size": 4, "input_size": [128, 72], "accumulation": 1, "activation_checkpointing": False}
RUNG_2 = {"batch_size": 2, "input_size": [128, 72], "accumulation": 2, "activation_checkpointing": False}
RUNG_2_CKPT = {**RUNG_2, "activation_checkpointing": True}


def start(epoch: int, step: int, rung: dict = RUNG_2, t: float = 0.0) -> dict:
    return {"t": t, "kind": "start", "epoch": epoch, "step": step, "samples": 0, "rung": rung, "device": "cpu"}


def epoch_event(epoch: int, step: int, evalai: float, val_loss: float, t: float = 0.0, **more: float) -> dict:
    return {"t": t, "kind": "epoch", "epoch": epoch, "step": step, "lr": 1e-3,
            "metrics": {"train_loss": val_loss / 2, "val_loss": val_loss, "val_evalai": evalai, **more}}


def oom(rung: dict, t: float = 0.0) -> dict:
    return {"t": t, "kind": "oom", "rung": rung, "message": "CUDA out of memory"}


def progress(step: int, t: float = 0.0) -> dict:
    return {"t": t, "kind": "progress", "epoch": 0, "step": step, "loss": 0.1}


def values(points: list[Point]) -> list[tuple[int, int, float]]:
    return [(p.epoch, p.step, p.value) for p in points]


def test_two_sessions_with_an_oom_step_down_and_a_rewound_epoch() -> None:
    """Session 1 OOMs on batch 4, trains epochs 0-2 on batch 2, and is cut off after logging epoch 2
    but before its checkpoint reached the store; session 2 resumes at epoch 2 and trains it again."""
    first = [start(0, 0, RUNG_4, t=1), oom(RUNG_4, t=2), start(0, 0, RUNG_2, t=3), progress(5, t=4),
             epoch_event(0, 10, 0.1, 0.9, t=5), epoch_event(1, 20, 0.3, 0.7, t=6), epoch_event(2, 30, 0.2, 0.8, t=7)]
    second = [start(2, 20, RUNG_2, t=10), epoch_event(2, 30, 0.25, 0.75, t=11), epoch_event(3, 40, 0.4, 0.6, t=12)]
    state = JobState(job="j", sessions=[
        SessionRecord(id="s1", host="a", gpu="Tesla T4", started_at="2026-01-01T00:00:00+00:00"),
        SessionRecord(id="s2", host="b", gpu="L4", started_at="2026-01-01T01:00:00+00:00")])
    data = build([("s1", first), ("s2", second)], state)

    assert list(data.series) == ["lr", "train_loss", "val_evalai", "val_loss"]
    # epoch 2 once, with session 2's value
    assert values(data.series["val_evalai"]) == [(0, 10, 0.1), (1, 20, 0.3), (2, 30, 0.25), (3, 40, 0.4)]
    assert values(data.series["val_loss"]) == [(0, 10, 0.9), (1, 20, 0.7), (2, 30, 0.75), (3, 40, 0.6)]
    assert data.epochs == 4
    assert [(m.session, m.step, m.label) for m in data.sessions] == [
        ("s1", 0, "session 1 (Tesla T4)"), ("s2", 20, "session 2 (L4)")]
    assert [(m.session, m.step) for m in data.resumes] == [("s1", 0), ("s2", 20)]
    assert data.resumes[1].label == "resume at epoch 3, batch 2 128x72"
    assert data.ooms == [OomStep(0, "s1", "batch 4 128x72", "batch 2 128x72")]
    assert data.ooms[0].label == "OOM at step 0: batch 4 128x72 → batch 2 128x72"
    assert data.best("val_evalai") == Point(3, 40, 0.4)
    assert data.best("val_loss") == Point(3, 40, 0.6)
    assert data.best("lr") is None
    assert data.skipped == 0


def test_a_resume_drops_the_epochs_it_trains_again_even_before_it_reaches_them() -> None:
    """A live plot of a session that resumed at epoch 1 shows the lost epochs 1-2 no more."""
    first = [start(0, 0, t=1), epoch_event(0, 10, 0.1, 0.9, t=2), epoch_event(1, 20, 0.3, 0.7, t=3),
             epoch_event(2, 30, 0.5, 0.5, t=4)]
    data = build([("s1", first), ("s2", [start(1, 10, t=9)])])
    assert values(data.series["val_evalai"]) == [(0, 10, 0.1)]
    assert data.epochs == 1


def test_events_uploaded_again_by_a_session_that_reused_the_work_dir_count_once() -> None:
    """A session on the same machine uploads the kept events.jsonl again from the start, under its own folder."""
    first = [start(0, 0, t=1), epoch_event(0, 10, 0.1, 0.9, t=2)]
    second = first + [start(1, 10, t=5), epoch_event(1, 20, 0.2, 0.8, t=6)]
    data = build([("s1", first), ("s2", second)])
    assert [(m.session, m.step) for m in data.sessions] == [("s1", 0), ("s2", 10)]
    assert [(m.session, m.step) for m in data.resumes] == [("s2", 10)]
    assert values(data.series["val_evalai"]) == [(0, 10, 0.1), (1, 20, 0.2)]


def test_an_oom_is_marked_at_the_last_step_reported_and_names_the_next_rung() -> None:
    events = [start(0, 0, RUNG_4, t=1), epoch_event(0, 10, 0.1, 0.9, t=2), progress(13, t=3), oom(RUNG_4, t=4),
              start(1, 10, RUNG_2, t=5), oom(RUNG_2, t=6), start(1, 10, RUNG_2_CKPT, t=7), oom(RUNG_2_CKPT, t=8)]
    data = build([("s1", events)])
    assert data.ooms == [OomStep(13, "s1", "batch 4 128x72", "batch 2 128x72"),
                         OomStep(10, "s1", "batch 2 128x72", "batch 2 128x72 act. ckpt"),
                         OomStep(10, "s1", "batch 2 128x72 act. ckpt", None)]  # the bottom: no rung followed
    assert data.ooms[2].label == "OOM at step 10: batch 2 128x72 act. ckpt"
    assert len(data.sessions) == 1 and len(data.resumes) == 2


def test_the_next_sessions_start_names_the_rung_after_an_oom_that_ended_a_session() -> None:
    data = build([("s1", [start(0, 0, RUNG_4, t=1), oom(RUNG_4, t=2)]), ("s2", [start(0, 0, RUNG_2, t=5)])])
    assert data.ooms == [OomStep(0, "s1", "batch 4 128x72", "batch 2 128x72")]


def test_events_with_wrong_fields_are_skipped_and_counted() -> None:
    events = [
        start(0, 0, t=1),
        {"t": 2, "kind": "epoch", "epoch": "one", "step": 10, "metrics": {"val_loss": 1.0}},
        {"t": 3, "kind": "epoch", "epoch": 0, "step": 10, "metrics": ["val_loss"]},
        {"t": 4, "kind": "epoch", "epoch": 0, "step": -1, "metrics": {"val_loss": 1.0}},
        {"t": 5, "kind": "epoch", "epoch": 0.5, "step": 10, "metrics": {"val_loss": 1.0}},
        {"t": 6, "kind": "start", "epoch": True, "step": 0},
        {"t": 7, "kind": "epoch", "epoch": 0, "step": 10.0, "lr": "high",
         "metrics": {"val_loss": 0.5, "val_evalai": float("nan"), "train_loss": "low", "$\\frac{1}{0}$": 1.0,
                     "val_pck@5": True, "val_accuracy@5": 0.25}},
        {"t": 8, "kind": "someday", "step": "x"},
    ]
    data = build([("s1", events)])
    assert data.skipped == 5
    # the last epoch event counts, with its usable values alone
    assert {m: values(p) for m, p in data.series.items()} == {"val_accuracy@5": [(0, 10, 0.25)],
                                                               "val_loss": [(0, 10, 0.5)]}


def test_parse_events_keeps_json_objects_with_a_kind_and_counts_the_rest() -> None:
    lines = [json.dumps(start(0, 0)), "not json", "[1, 2]", json.dumps({"no": "kind"}), "", "  ",
             json.dumps({"kind": 3}), json.dumps(epoch_event(0, 10, 0.1, 0.9))[:30], "\xff\xfe garbage",
             '{"t": 1, "kind": "epoch", "epoch": 0, "step": 1, "metrics": {"val_loss": NaN}}']
    found, bad = parse_events("\n".join(lines).encode() + b"\n\x80 not UTF-8\n")
    assert [e["kind"] for e in found] == ["start", "epoch"]
    assert bad == 7


def test_best_points_max_evalai_min_losses_the_first_of_equals() -> None:
    points = [Point(0, 1, 0.5), Point(1, 2, 0.2), Point(2, 3, 0.5), Point(3, 4, 0.2)]
    assert (goal("val_evalai"), goal("val_loss"), goal("train_loss"), goal("lr"), goal("val_pck@5")) == (
        "max", "min", "min", None, None)
    assert best_point("val_evalai", points) == Point(0, 1, 0.5)
    assert best_point("val_loss", points) == Point(1, 2, 0.2)
    assert best_point("val_pck@5", points) is None
    assert best_point("val_loss", []) is None


def test_metrics_default_to_those_of_the_three_the_job_has() -> None:
    data = build([("s1", [start(0, 0), {"t": 1, "kind": "epoch", "epoch": 0, "step": 2,
                                        "metrics": {"val_loss": 0.5, "val_pck@5": 0.1}}])])
    assert choose_metrics(data, None) == ["val_loss"]
    full = build([("s1", [start(0, 0), epoch_event(0, 2, 0.1, 0.5)])])
    assert choose_metrics(full, None) == list(DEFAULT_METRICS)
    other = build([("s1", [start(0, 0), {"t": 1, "kind": "epoch", "epoch": 0, "step": 2,
                                         "metrics": {"accuracy": 0.5}}])])
    assert choose_metrics(other, None) == ["accuracy"]  # a trainer naming its metrics otherwise: all of them


def test_an_unknown_metric_lists_the_jobs_metrics() -> None:
    data = build([("s1", [start(0, 0), epoch_event(0, 2, 0.1, 0.5)])])
    assert choose_metrics(data, ["lr", "val_loss"]) == ["lr", "val_loss"]
    with pytest.raises(UnknownMetric) as raised:
        choose_metrics(data, ["val_loss", "val_evalia"])
    assert str(raised.value) == ("--metrics: 'val_evalia' not among this job's metrics: "
                                 "lr, train_loss, val_evalai, val_loss")


def test_parse_metric_list() -> None:
    assert parse_metric_list(None) is None
    assert parse_metric_list(" val_loss, lr,val_loss,") == ["val_loss", "lr"]
    with pytest.raises(UnknownMetric, match="name at least one metric"):
        parse_metric_list(" , ")


def test_rung_label_tolerates_what_is_not_a_rung() -> None:
    assert rung_label(RUNG_2_CKPT) == "batch 2 128x72 act. ckpt"
    for bad in (None, "rung", {"batch_size": 4}, {"batch_size": "4", "input_size": [1, 2]},
                {"batch_size": 4, "input_size": [1]}, {"batch_size": 4, "input_size": [1, "x"]}):
        assert rung_label(bad) == "?"


def test_summary_and_headline_say_what_the_png_shows() -> None:
    events = [start(0, 0, RUNG_4, t=1), oom(RUNG_4, t=2), start(0, 0, RUNG_2, t=3),
              epoch_event(0, 10, 0.1, 0.9, t=4), epoch_event(1, 20, 0.3, 0.7, t=5)]
    data = build([("s1", events), ("s2", [start(2, 20, t=9), epoch_event(2, 30, 0.2, 0.8, t=10)])])
    metrics = choose_metrics(data, None)
    shown = summary(data, metrics, "demo", Path("demo.png"))
    assert (shown["job"], shown["out"], shown["epochs"], shown["sessions"]) == ("demo", "demo.png", 3, 2)
    assert [(s["metric"], s["points"]) for s in shown["series"]] == [
        ("val_evalai", 3), ("val_loss", 3), ("train_loss", 3)]
    assert shown["series"][0]["best"] == {"epoch": 2, "step": 20, "value": 0.3}  # epochs counted from 1
    assert shown["series"][1]["last"] == {"epoch": 3, "step": 30, "value": 0.8}
    assert [m["step"] for m in shown["session_starts"]] == [0, 20]
    assert [m["step"] for m in shown["resumes"]] == [0, 20]
    assert shown["ooms"] == [{"session": "s1", "step": 0, "from": "batch 4 128x72", "to": "batch 2 128x72"}]
    assert json.loads(json.dumps(shown)) == shown
    assert headline(data, metrics) == ("val_evalai, val_loss, train_loss over 3 epochs (steps 10–30), 2 sessions, "
                                       "1 OOM step-down")


def test_no_epoch_yet_is_no_series() -> None:
    data = build([("s1", [start(0, 0), progress(3)])])
    assert data.series == {} and data.epochs == 0 and len(data.sessions) == 1
    assert build([]).series == {}

