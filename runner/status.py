"""A job's status (`state.json`, DESIGN §5): the model, the derived phase, and how it is shown.

`state.json` is the contract for anything that reads a job: `runner status --json` prints it
as stored, plus the derived `phase`. Fields may be added, never renamed or removed.

Readers take the store's bytes as untrusted: `read_state` turns anything that is not a valid
status (not UTF-8, not JSON, a list, wrong types, an unknown phase) into `UnreadableState`, which
readers show as the phase `unreadable` for that job alone; times that do not parse read as unknown.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract import events as ev
from contract.config import Rung

Phase = Literal["submitted", "preparing", "running", "paused", "interrupted", "done", "failed", "cancelled"]
STALE_INTERVALS = 3
ALIVE = ("preparing", "running")  # phases a live session keeps its heartbeat fresh in
# What readers show for a job whose state.json cannot be read; never stored.
UNREADABLE = "unreadable"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_iso(value: str | None) -> datetime | None:
    """A stored time; None when there is none or it does not parse. A time without a zone is UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Record(BaseModel):
    """Status parts keep keys they do not know, so an older reader never drops a newer writer's fields."""

    model_config = ConfigDict(extra="allow")


class RungStatus(Rung):
    """A rung as status shows it: the ladder's rung and its place on the ladder."""

    model_config = ConfigDict(extra="allow", frozen=True)

    index: int = 0


class DataRecord(Record):
    """Where a session's data came from: `cache` names STORE/_data/CACHE/; `restored` lists what
    came from it, `prepared` what was downloaded or rendered here instead, `uploaded` what this
    session added to it; `keypoints_derived` counts frames whose keypoints were derived here
    (0 when every keypoint came from a cache)."""

    cache: str | None = None
    restored: list[str] = Field(default_factory=list)
    prepared: list[str] = Field(default_factory=list)
    uploaded: list[str] = Field(default_factory=list)
    keypoints_derived: int = 0


class SessionRecord(Record):
    id: str
    host: str
    gpu: str
    started_at: str
    ended_at: str | None = None
    end_reason: str | None = None
    workdir: str | None = None  # where its files live until uploaded: what an interrupted job points to
    deadline_at: str | None = None  # when it stops to save and upload (session.max_hours less the margin)
    data: DataRecord | None = None  # where its data came from, once prepared


class OomRecord(Record):
    time: str
    gpu: str
    rung: RungStatus


class Best(Record):
    value: float
    step: int


class LastCheckpoint(Record):
    step: int
    token: int
    written_at: str | None = None


class Uploading(Record):
    """The file a tick is uploading now: with a fresh heartbeat, a long upload reads as running,
    and `sent` (bytes so far, as the store client reports them) shows it moving."""

    key: str
    bytes: int
    since: str
    sent: int = 0


class Goodput(Record):
    """Where the session time went; `lost_s` is work a cut-off session did that was trained again."""

    training_s: float = 0.0
    restoring_s: float = 0.0
    preparing_s: float = 0.0
    lost_s: float = 0.0


class JobState(Record):
    """What the supervisor writes on every tick; readers ignore fields they do not know."""

    job: str
    phase: Phase = "submitted"
    reason: str | None = None
    epoch: int = 0
    max_epochs: int = 0
    step: int = 0
    samples_per_s: float | None = None
    eta_s: float | None = None
    rung: RungStatus | None = None
    rungs_by_gpu: dict[str, int] = Field(default_factory=dict)
    ooms: list[OomRecord] = Field(default_factory=list)
    sessions: list[SessionRecord] = Field(default_factory=list)
    session: str | None = None
    attempt: int = 0
    restarts: int = 0
    last_checkpoint: LastCheckpoint | None = None
    heartbeat_at: str | None = None
    sync_every_s: float = 60.0
    exclusive_lease: bool = True
    best: dict[str, Best] = Field(default_factory=dict)
    goodput: Goodput = Field(default_factory=Goodput)
    error: list[str] | None = None
    uploading: Uploading | None = None


class UnreadableState(ValueError):
    """A state.json that is not a valid status; the message is one short line."""


def read_state(data: bytes) -> JobState:
    """The status in `data`, or `UnreadableState` saying in one line why it is not one."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableState(f"not UTF-8 text (byte {error.start})") from None
    try:
        return JobState.model_validate_json(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = _printable(".".join(str(part) for part in first.get("loc", ())), 80)
        message = _printable(str(first.get("msg", "invalid")), 160)
        count = error.error_count()
        more = f" (and {count - 1} more problem(s))" if count > 1 else ""
        raise UnreadableState(f"{where + ': ' if where else ''}{message}{more}") from None


def _printable(text: str, limit: int) -> str:
    """Text from the store made one short line: no control characters, at most `limit` long."""
    text = "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unreadable_document(job: str, error: str) -> dict[str, Any]:
    """What `runner status --json` lists for a job whose state.json cannot be read."""
    return {"job": job, "phase": UNREADABLE, "error": error}


def close_lost_sessions(state: JobState) -> list[SessionRecord]:
    """Sessions that never recorded their end were cut off (a kill, a Colab cutoff): they end at
    the job's last heartbeat, which is the last moment anyone saw them, with `end_reason: lost`.
    One cut off before its first tick has no heartbeat of its own (the job's is an earlier
    session's): it ends where it started, never before. Pure; the next session calls it on the
    state it loads."""
    lost = [s for s in state.sessions if s.ended_at is None]
    beat = parse_iso(state.heartbeat_at)
    for session in lost:
        start = parse_iso(session.started_at)
        ours = beat is not None and (start is None or beat >= start)
        session.ended_at = state.heartbeat_at if ours else session.started_at
        session.end_reason = "lost"
    return lost


def apply_events(state: JobState, events: list[dict[str, Any]]) -> None:
    """Fold trainer events (DESIGN §4) into the status. Pure, so it is tested without processes.

    Best metrics are the trainer's own (it restores them from the checkpoint it resumed), so the
    status never disagrees with the best weights in the store.
    """
    for event in events:
        kind = event.get("kind")
        if kind in (ev.START, ev.PROGRESS, ev.EPOCH):
            state.epoch = int(event.get("epoch", state.epoch))
            state.step = int(event.get("step", state.step))
        if kind == ev.PROGRESS:
            state.samples_per_s = event.get("samples_per_s")
            state.eta_s = event.get("eta_s")
        elif kind == ev.EPOCH:
            state.epoch = int(event["epoch"]) + 1
            best = event.get("best")
            if isinstance(best, dict):
                state.best = {metric: Best.model_validate(value) for metric, value in best.items()}


def effective_phase(state: JobState, now: datetime) -> str:
    """`preparing` or `running` with a heartbeat older than 3 sync intervals means the session is
    gone (cut off, killed): the job is `interrupted` until a session attaches it."""
    if state.phase in ALIVE:
        beat = parse_iso(state.heartbeat_at)
        if beat is None or (now - beat).total_seconds() > STALE_INTERVALS * state.sync_every_s:
            return "interrupted"
    return state.phase


def unsaved(state: JobState, now: datetime) -> dict[str, Any] | None:
    """For an interrupted job, where work the store may not have lives: whatever the session
    trained after its last uploaded checkpoint is only in its work dir (a final flush that failed,
    a machine cut off between checkpoint and upload). Pure; None for any other phase."""
    if effective_phase(state, now) != "interrupted" or not state.sessions:
        return None
    session = state.sessions[-1]
    return {"after_step": state.last_checkpoint.step if state.last_checkpoint else 0,
            "session": session.id, "host": session.host, "workdir": session.workdir}


def status_document(state: JobState, now: datetime) -> dict[str, Any]:
    """The stable `runner status --json` object: state.json with the derived phase and, for an
    interrupted job, what may be only on its last machine (`unsaved`)."""
    document = state.model_dump(mode="json")
    document["phase"] = effective_phase(state, now)
    document["unsaved"] = unsaved(state, now)
    return document


def _age(value: str | None, now: datetime) -> str:
    moment = parse_iso(value)
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def shown_epoch(state: JobState) -> int:
    """The epoch as the trainer's log counts it: the one in progress, from 1 (`state.epoch` counts
    the epochs completed), and the last one once the job is done."""
    if state.phase == "done":
        return state.epoch
    return min(state.epoch + 1, state.max_epochs) if state.max_epochs else state.epoch + 1


def goodput_row(goodput: Goodput) -> str:
    """Where the sessions' time went, in seconds and as shares of their sum."""
    parts = {"training": goodput.training_s, "restoring": goodput.restoring_s, "preparing": goodput.preparing_s}
    total = sum(parts.values())
    shares = ", ".join(f"{name} {_duration(value)}" + (f" ({value / total:.0%})" if total > 0 else "")
                       for name, value in parts.items())
    lost = f"; lost {_duration(goodput.lost_s)}" + (
        f" ({goodput.lost_s / goodput.training_s:.0%} of training)" if goodput.training_s > 0 else "")
    return shares + lost


def describe(state: JobState, now: datetime) -> list[tuple[str, str]]:
    """Rows for the human `runner status JOB` view."""
    phase = effective_phase(state, now)
    rows = [("phase", phase + (f" ({state.reason})" if state.reason else ""))]
    rows.append(("progress", f"epoch {shown_epoch(state)}/{state.max_epochs}, step {state.step}"))
    if phase == "running" and state.samples_per_s:
        rows.append(("speed", f"{state.samples_per_s:.1f} samples/s, ETA {_duration(state.eta_s)}"))
    current = state.sessions[-1] if state.sessions and phase in ("preparing", "running") else None
    if current and current.deadline_at:
        end = parse_iso(current.deadline_at)
        left = f" (in {_duration((end - now).total_seconds())})" if end else ""
        rows.append(("session stops", f"{current.deadline_at}{left}, to save and upload before the limit"))
    if state.last_checkpoint:
        c = state.last_checkpoint
        rows.append(("last checkpoint", f"step {c.step} (token {c.token}), {_age(c.written_at, now)}"))
    if state.rung:
        r = state.rung
        rows.append(("rung", f"{r.index}: batch {r.batch_size}, input {list(r.input_size)}, "
                             f"accumulation {r.accumulation}"
                             + (", act. checkpointing" if r.activation_checkpointing else "")))
    for oom in state.ooms:
        rows.append(("oom", f"{oom.time} on {oom.gpu}: batch {oom.rung.batch_size}, input {list(oom.rung.input_size)}"))
    for session in state.sessions:
        end = f" → {session.ended_at} ({session.end_reason})" if session.ended_at else ""
        rows.append(("session", f"{session.id} on {session.host} ({session.gpu}) {session.started_at}{end}"))
    left = unsaved(state, now)
    if left:
        where = f" in {left['workdir']}" if left["workdir"] else ""
        rows.append(("not in the store", f"anything after step {left['after_step']} is only on {left['host']}{where} "
                                         f"(session {left['session']}); `runner attach {state.job} --workdir "
                                         f"{left['workdir'] or 'W'}` there uploads it, else it is trained again"))
    if state.uploading:
        up = state.uploading
        share = f" ({up.sent / up.bytes:.0%})" if up.bytes else ""
        rows.append(("uploading", f"{up.key}: {up.sent / 2**20:.1f} of {up.bytes / 2**20:.1f} MiB{share}, "
                                  f"since {_age(up.since, now)}"))
    rows.append(("heartbeat", _age(state.heartbeat_at, now)))
    rows.append(("goodput", goodput_row(state.goodput)))
    for metric, best in sorted(state.best.items()):
        rows.append((f"best {metric}", f"{best.value:.4g} at step {best.step}"))
    if not state.exclusive_lease:
        rows.append(("warning", "this store has no exclusive create: two sessions could race for the job"))
    if state.error:
        rows.append(("error", state.error[-1]))
    return rows
