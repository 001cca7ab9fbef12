"""A job's status (`state.json`, DESIGN §5): the model, the derived phase, and how it is shown.

`state.json` is the contract for anything that reads a job: `runner status --json` prints it
as stored, plus the derived `phase`. Fields may be added, never renamed or removed.
"""

from __future__ import annotations

import operator
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["submitted", "preparing", "running", "paused", "interrupted", "done", "failed", "cancelled"]
STALE_INTERVALS = 3


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class JobState(BaseModel):
    """What the supervisor writes on every tick; readers ignore fields they do not know."""

    model_config = ConfigDict(extra="allow")

    job: str
    phase: Phase = "submitted"
    reason: str | None = None
    epoch: int = 0
    max_epochs: int = 0
    step: int = 0
    samples_per_s: float | None = None
    eta_s: float | None = None
    rung: dict[str, Any] | None = None
    rungs_by_gpu: dict[str, int] = Field(default_factory=dict)
    ooms: list[dict[str, Any]] = Field(default_factory=list)
    sessions: list[dict[str, Any]] = Field(default_factory=list)
    session: str | None = None
    attempt: int = 0
    restarts: int = 0
    last_checkpoint: dict[str, Any] | None = None
    heartbeat_at: str | None = None
    sync_every_s: float = 60.0
    exclusive_lease: bool = True
    best: dict[str, dict[str, float]] = Field(default_factory=dict)
    goodput: dict[str, float] = Field(
        default_factory=lambda: {"training_s": 0.0, "restoring_s": 0.0, "preparing_s": 0.0, "lost_s": 0.0})
    error: list[str] | None = None


BEST_DIRECTION = {"val_evalai": operator.gt, "val_loss": operator.lt}


def apply_events(state: JobState, events: list[dict[str, Any]]) -> None:
    """Fold trainer events (DESIGN §4) into the status. Pure, so it is tested without processes."""
    for event in events:
        kind = event.get("kind")
        if kind in ("start", "progress", "epoch"):
            state.epoch = int(event.get("epoch", state.epoch))
            state.step = int(event.get("step", state.step))
        if kind == "progress":
            state.samples_per_s = event.get("samples_per_s")
            state.eta_s = event.get("eta_s")
        elif kind == "epoch":
            state.epoch = int(event["epoch"]) + 1
            for metric, better in BEST_DIRECTION.items():
                value = event.get("metrics", {}).get(metric)
                if value is None or value != value:  # missing or NaN
                    continue
                previous = state.best.get(metric)
                if previous is None or better(value, previous["value"]):
                    state.best[metric] = {"value": float(value), "step": float(event.get("step", 0))}


def effective_phase(state: JobState, now: datetime) -> str:
    """`running` with a heartbeat older than 3 sync intervals means the session is gone."""
    if state.phase == "running":
        beat = parse_iso(state.heartbeat_at)
        if beat is None or (now - beat).total_seconds() > STALE_INTERVALS * state.sync_every_s:
            return "interrupted"
    return state.phase


def status_document(state: JobState, now: datetime) -> dict[str, Any]:
    """The stable `runner status --json` object: state.json with the derived phase."""
    document = state.model_dump(mode="json")
    document["phase"] = effective_phase(state, now)
    return document


def _age(value: str | None, now: datetime) -> str:
    moment = parse_iso(value)
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(state: JobState, now: datetime) -> list[tuple[str, str]]:
    """Rows for the human `runner status JOB` view."""
    phase = effective_phase(state, now)
    rows = [("phase", phase + (f" ({state.reason})" if state.reason else ""))]
    rows.append(("progress", f"epoch {state.epoch}/{state.max_epochs}, step {state.step}"))
    if state.samples_per_s:
        rows.append(("speed", f"{state.samples_per_s:.1f} samples/s, ETA {_duration(state.eta_s)}"))
    if state.last_checkpoint:
        c = state.last_checkpoint
        rows.append(("last checkpoint", f"step {c['step']} (token {c['token']}), {_age(c.get('written_at'), now)}"))
    if state.rung:
        r = state.rung
        rows.append(("rung", f"{r.get('index')}: batch {r['batch_size']}, input {r['input_size']}, "
                             f"accumulation {r['accumulation']}"
                             + (", act. checkpointing" if r.get("activation_checkpointing") else "")))
    for oom in state.ooms:
        rows.append(("oom", f"{oom['time']} on {oom['gpu']}: batch {oom['rung']['batch_size']}, input {oom['rung']['input_size']}"))
    for session in state.sessions:
        end = f" → {session['ended_at']} ({session.get('end_reason')})" if session.get("ended_at") else ""
        rows.append(("session", f"{session['id']} on {session['host']} ({session['gpu']}) {session['started_at']}{end}"))
    rows.append(("heartbeat", _age(state.heartbeat_at, now)))
    for metric, best in sorted(state.best.items()):
        rows.append((f"best {metric}", f"{best['value']:.4g} at step {int(best['step'])}"))
    if not state.exclusive_lease:
        rows.append(("warning", "this store has no exclusive create: two sessions could race for the job"))
    if state.error:
        rows.append(("error", state.error[-1]))
    return rows
