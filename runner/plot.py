"""`runner plot`: a PNG of a job's metrics across all its sessions, built from the store alone.

The data are the trainer's events (DESIGN §4), which every session uploads as numbered
`events.jsonl` parts (runner/logs.py lists them); the x axis is the optimizer step, which goes on
across sessions. Two halves, so the rules are tested without drawing:

- `build` (pure): the events, session by session -> `PlotData`: one series per metric, where each
  session began training, every resume, every OOM step-down, and each metric's best point.
- `draw`: matplotlib with the Agg canvas (no display), imported inside it: the runner imports no
  numpy at import time (tests/unit/test_torch_free.py), and only `runner plot` needs it.

How the events become series:
- An event seen twice counts once, for the session that uploaded it first: a session that reuses
  a work dir uploads its `events.jsonl` again from the start, under its own session folder.
- A `start` at epoch E rewinds: points of epoch E and later recorded before it are dropped. They
  were trained after the checkpoint the job went on from (a session cut off before that
  checkpoint reached the store), so an epoch trained twice shows once, with its later value.
- Lines that are not events, and events whose fields have the wrong types, are skipped and
  counted; a value that is not a finite number within ±LIMIT is left out. Nothing a store holds
  makes it fail.

Epochs are shown counted from 1, as the trainer's log counts them (events count from 0).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from contract import events as ev
from contract.files import EVENTS_FILE, atomic_write
from runner.logs import LogReader, Skipped
from runner.status import JobState
from runner.store import JobStore

Event = dict[str, Any]
Goal = Literal["max", "min"]

# What `runner plot` draws without --metrics: those of these the job has.
DEFAULT_METRICS = ("val_evalai", "val_loss", "train_loss")
LR = "lr"  # the epoch event's learning rate, plotted like a metric
# A metric's name is drawn and printed: a name from the store that is not one of these is skipped
# (no `$` that matplotlib would read as math, no control characters, a bounded length).
METRIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@%/+-]{0,63}")
# Metric values beyond ±LIMIT (a diverged run) are left out like NaN: an axis from -1e308 to 1e308
# overflows matplotlib's transforms.
LIMIT = 1e100
OOMS_LISTED = 6  # OOM step-downs named in the legend; more are counted in one entry


@dataclass(frozen=True)
class Point:
    epoch: int  # as the trainer's events count it, from 0
    step: int
    value: float


@dataclass(frozen=True)
class Mark:
    """A place on the step axis: where a session began training, or a resume."""

    step: int
    session: str
    label: str


@dataclass(frozen=True)
class OomStep:
    """An OOM step-down: the rung that ran out of memory, and the rung the next start used
    (None when no start followed, e.g. the bottom of the ladder failed the job). The `oom` event
    has no step: it is the last step reported before it."""

    step: int
    session: str
    old: str
    new: str | None

    @property
    def label(self) -> str:
        return f"OOM at step {self.step}: {self.old}" + (f" → {self.new}" if self.new else "")


@dataclass
class PlotData:
    series: dict[str, list[Point]] = field(default_factory=dict)  # metric -> points, by epoch
    sessions: list[Mark] = field(default_factory=list)
    resumes: list[Mark] = field(default_factory=list)
    ooms: list[OomStep] = field(default_factory=list)
    skipped: int = 0  # events left out: a needed field missing or of the wrong type

    @property
    def epochs(self) -> int:
        return len({p.epoch for points in self.series.values() for p in points})

    def best(self, metric: str) -> Point | None:
        return best_point(metric, self.series.get(metric, []))


def goal(metric: str) -> Goal | None:
    """Which way is better: EvalAI up, losses down; other metrics have no best point."""
    if metric.endswith("evalai"):
        return "max"
    if metric.endswith("loss"):
        return "min"
    return None


def best_point(metric: str, points: Sequence[Point]) -> Point | None:
    """The best point of a series (the earliest of equals), None for a metric without a goal."""
    way = goal(metric)
    if way is None or not points:
        return None
    pick = max if way == "max" else min
    return pick(points, key=lambda p: p.value)  # max/min keep the first of equal values


def parse_events(data: bytes) -> tuple[list[Event], int]:
    """The events in one part, and how many non-empty lines were not events; tolerant as
    `contract.events.EventReader` is: a JSON object with a string `kind` is an event."""
    found, bad = [], 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("kind"), str):
            found.append(event)
        elif line.strip():
            bad += 1
    return found, bad


def _count(value: object) -> int | None:
    """A step or epoch: a non-negative whole number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def _number(value: object) -> float | None:
    """A metric's value: a finite number within ±LIMIT (beyond it matplotlib cannot scale an axis)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and abs(value) <= LIMIT else None


def rung_label(rung: object) -> str:
    """A rung as `batch 4 128x72` (+ `act. ckpt`); `?` for what is not one."""
    if not isinstance(rung, dict):
        return "?"
    batch, size = _count(rung.get("batch_size")), rung.get("input_size")
    sizes = [_count(v) for v in size] if isinstance(size, list) and len(size) == 2 else [None]
    if batch is None or None in sizes:
        return "?"
    checkpointing = " act. ckpt" if rung.get("activation_checkpointing") is True else ""
    return f"batch {batch} {sizes[0]}x{sizes[1]}{checkpointing}"


def build(sessions: Sequence[tuple[str, Sequence[Event]]], state: JobState | None = None) -> PlotData:
    """The series and marks of a job from its events, session by session in the order the
    sessions ran; `state` only names each session's GPU."""
    gpus = {s.id: s.gpu for s in state.sessions} if state is not None else {}
    data = PlotData()
    epochs: dict[int, tuple[int, dict[str, float]]] = {}  # epoch -> (step, metric values)
    seen: set[str] = set()
    waiting: list[int] = []  # OOM step-downs whose next rung no start has said yet
    last_step = 0
    for session, events in sessions:
        began = False
        for event in events:
            identity = json.dumps(event, sort_keys=True)
            if identity in seen:
                continue
            seen.add(identity)
            kind, step = event.get("kind"), _count(event.get("step"))
            if kind == ev.START:
                epoch = _count(event.get("epoch"))
                if step is None or epoch is None:
                    data.skipped += 1
                    continue
                rung = rung_label(event.get("rung"))
                if data.sessions:
                    data.resumes.append(Mark(step, session, f"resume at epoch {epoch + 1}, {rung}"))
                if not began:
                    gpu = f" ({gpus[session]})" if gpus.get(session) else ""
                    data.sessions.append(Mark(step, session, f"session {len(data.sessions) + 1}{gpu}"))
                    began = True
                for index in waiting:
                    data.ooms[index] = replace(data.ooms[index], new=rung)
                waiting.clear()
                epochs = {e: kept for e, kept in epochs.items() if e < epoch}
            elif kind == ev.EPOCH:
                epoch, values = _count(event.get("epoch")), event.get("metrics")
                if step is None or epoch is None or not isinstance(values, dict):
                    data.skipped += 1
                    continue
                metrics = {name: _number(value) for name, value in {**values, LR: event.get(LR)}.items()
                           if isinstance(name, str) and METRIC_NAME.fullmatch(name)}
                epochs[epoch] = (step, {name: value for name, value in metrics.items() if value is not None})
            elif kind == ev.OOM:
                waiting.append(len(data.ooms))
                data.ooms.append(OomStep(last_step, session, rung_label(event.get("rung")), None))
            if step is not None:
                last_step = step
    for epoch, (step, values) in sorted(epochs.items()):
        for name, value in values.items():
            data.series.setdefault(name, []).append(Point(epoch, step, value))
    data.series = dict(sorted(data.series.items()))
    return data


class UnknownMetric(ValueError):
    """A metric asked for that the job does not have; the message lists those it has."""


def parse_metric_list(text: str | None) -> list[str] | None:
    """`--metrics a,b`: the names, in order, once each; None for the default."""
    if text is None:
        return None
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise UnknownMetric("--metrics: name at least one metric, e.g. --metrics val_evalai,val_loss")
    return names


def choose_metrics(data: PlotData, asked: list[str] | None) -> list[str]:
    """The metrics to draw: those asked for, or those of DEFAULT_METRICS the job has (all of its
    metrics when it has none of them: a trainer that names its metrics otherwise)."""
    have = list(data.series)
    if asked is None:
        return [m for m in DEFAULT_METRICS if m in data.series] or have
    unknown = [m for m in asked if m not in data.series]
    if unknown:
        raise UnknownMetric(f"--metrics: {', '.join(map(ascii, unknown))} not among this job's metrics: "
                            f"{', '.join(have)}")
    return asked


def summary(data: PlotData, metrics: Sequence[str], job: str, out: Path) -> dict[str, Any]:
    """What a PNG shows, as `runner plot --json` prints it (epochs counted from 1)."""

    def point(p: Point | None) -> dict[str, Any] | None:
        return None if p is None else {"epoch": p.epoch + 1, "step": p.step, "value": p.value}

    def mark(m: Mark) -> dict[str, Any]:
        return {"session": m.session, "step": m.step, "label": m.label}

    return {
        "job": job, "out": str(out), "epochs": data.epochs, "sessions": len(data.sessions),
        "series": [{"metric": m, "points": len(data.series[m]), "best": point(data.best(m)),
                    "last": point(data.series[m][-1])} for m in metrics],
        "session_starts": [mark(m) for m in data.sessions], "resumes": [mark(m) for m in data.resumes],
        "ooms": [{"session": o.session, "step": o.step, "from": o.old, "to": o.new} for o in data.ooms],
        "skipped_events": data.skipped,
    }


def headline(data: PlotData, metrics: Sequence[str]) -> str:
    """The one line `runner plot` prints after the PNG's path."""
    steps = sorted(p.step for m in metrics for p in data.series[m])
    ooms = f", {plural(len(data.ooms), 'OOM step-down')}" if data.ooms else ""
    return (f"{', '.join(metrics)} over {plural(data.epochs, 'epoch')} (steps {steps[0]}–{steps[-1]}), "
            f"{plural(len(data.sessions), 'session')}{ooms}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


class EventParts:
    """A job's events, session by session, from its `events.jsonl` parts in the store, read as
    `runner logs` reads a log (`LogReader`: many parts at a time, a session's merged object in
    place of its parts). What was read is kept, so `--live` fetches only what is new."""

    def __init__(self, job: JobStore, skipped: Skipped) -> None:
        self.reader = LogReader(job, EVENTS_FILE, skipped)
        self.bad_lines = 0  # lines in the parts read that were not events
        self._events: dict[str, list[Event]] = {}

    def sessions(self) -> list[tuple[str, list[Event]]]:
        """(session, its events) in session order (ids begin with the start time); each piece
        the reader gives is whole lines, as the syncer uploads only complete ones."""
        for session, data in self.reader.read_new_by_session():
            events, bad = parse_events(data)
            self._events.setdefault(session, []).extend(events)
            self.bad_lines += bad
        return sorted(self._events.items())


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported here; the message says what to install."""


def _text(value: str, limit: int = 80) -> str:
    """Text from the store as matplotlib should show it: printable, no math (`$`), bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value)[:limit]
    return text.replace("$", r"\$")


def draw(data: PlotData, metrics: Sequence[str], title: str, out: Path) -> None:
    """Write the PNG: one panel per metric over the step axis, with session starts (dashed,
    named at the top), resumes (triangles on the axis), OOM step-downs (red, named in the legend)
    and each metric's best point. With no metric, a PNG that says there is no epoch yet.

    Written whole or not at all (`atomic_write`): a viewer or Ctrl-C never sees half a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise PlotUnavailable(f"runner plot needs matplotlib ({error}): pip install 'matplotlib>=3.8'") from None
    rows = max(len(metrics), 1)
    figure = Figure(figsize=(10, 1.2 + 2.6 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_text(title))
    if not metrics:
        axes = figure.add_subplot()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no epoch yet", ha="center", va="center", fontsize="x-large", transform=axes.transAxes)
    else:
        panels = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        for index, (axes, metric) in enumerate(zip(panels, metrics)):
            points = data.series[metric]
            axes.plot([p.step for p in points], [p.value for p in points], marker="o", markersize=3,
                      color=f"C{index}")
            axes.set_ylabel(_text(metric, 40))
            axes.grid(alpha=0.3)
            if metric == LR and all(p.value > 0 for p in points):
                axes.set_yscale("log")
            for mark in data.sessions:
                axes.axvline(mark.step, color="0.4", linestyle="--", linewidth=1)
            for oom in data.ooms:
                axes.axvline(oom.step, color="red", linestyle=":", linewidth=1.2)
            if data.resumes:
                axes.plot([m.step for m in data.resumes], [0.0] * len(data.resumes), linestyle="none", marker="^",
                          color="0.3", clip_on=False, transform=axes.get_xaxis_transform())
            best = data.best(metric)
            if best is not None:
                axes.plot([best.step], [best.value], marker="*", markersize=14, color="gold", markeredgecolor="black")
                axes.annotate(f"best {best.value:.4g}\nepoch {best.epoch + 1}", (best.step, best.value),
                              xytext=(8, 8), textcoords="offset points", fontsize="small",
                              bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
        for mark in data.sessions:
            panels[0].annotate(_text(mark.label, 40), (mark.step, 1.0), xycoords=panels[0].get_xaxis_transform(),
                               xytext=(2, -2), textcoords="offset points", rotation=90, va="top", fontsize="small",
                               color="0.3")
        panels[-1].set_xlabel("optimizer step")
        panels[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        handles = [Line2D([], [], color="0.4", linestyle="--", label="session start")]
        if data.resumes:
            handles.append(Line2D([], [], color="0.3", linestyle="none", marker="^",
                                  label=f"resume ({len(data.resumes)})"))
        for oom in data.ooms[:OOMS_LISTED]:
            handles.append(Line2D([], [], color="red", linestyle=":", label=_text(oom.label)))
        if len(data.ooms) > OOMS_LISTED:
            handles.append(Line2D([], [], color="red", linestyle=":",
                                  label=f"{len(data.ooms) - OOMS_LISTED} more OOM step-down(s)"))
        if any(goal(m) for m in metrics):
            handles.append(Line2D([], [], color="gold", markeredgecolor="black", marker="*", markersize=10,
                                  linestyle="none", label="best"))
        figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    atomic_write(out, lambda f: figure.savefig(f, format="png", metadata={"Title": _text(title),
                                                                          "Software": "runner plot"}))
