"""`runner watch` (issue 13): which messages one look at a store sends, and what it remembers for
the next look. Pure: no store, no clock, no network; the command reads the store, sends with
runner/notify.py and keeps the remembered phases in a small local file (see `memory_document`),
so that a cron job that runs `runner watch --once` every few minutes sends one message per change.

The rules, one message per job and change:
- The phase compared is the effective one (runner/status.py `effective_phase`): a `running` job
  whose heartbeat went stale is `interrupted`, which is the change a person most needs to hear of.
- The first look at a store (nothing remembered for it) records every job's phase and sends
  nothing: a store full of finished jobs is not news, and a watch set up after the fact must not
  replay history.
- After that, a job not seen before is a job submitted since the last look: it is reported only if
  it has already stopped (done, failed, paused, interrupted, cancelled); one that is starting or
  running is recorded quietly.
- Moves among `submitted`, `preparing` and `running` are a job being started (by the person who
  watches): recorded, not reported. Every other change of phase is one message.
- A job whose state.json cannot be read, or that has none yet, keeps what was remembered for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runner.layout import JOB_NAME
from runner.notify import Message, phase_message
from runner.status import JobState, effective_phase

STARTING = ("submitted", "preparing", "running")  # a job being started: moves among these are not news
MEMORY_VERSION = 1


@dataclass(frozen=True)
class Look:
    """What one look decided: the messages to send, (job, message), and the phases to remember."""

    messages: list[tuple[str, Message]]
    remembered: dict[str, str]


def decide(previous: Mapping[str, str] | None, states: Mapping[str, JobState], now: datetime, store: str,
           listed: Collection[str] | None = None) -> Look:
    """One look. `previous`: the phases remembered from the last look at this store, None when
    there was none; `states`: the readable status of each job looked at; `store`: the store as the
    messages' commands should name it; `listed`: every job in the store when the whole store is
    watched, so that jobs deleted from it are forgotten (None when named jobs are watched)."""
    remembered = dict(previous or {})
    if listed is not None:
        remembered = {job: phase for job, phase in remembered.items() if job in listed}
    messages: list[tuple[str, Message]] = []
    for job, state in sorted(states.items()):
        phase = effective_phase(state, now)
        old = remembered.get(job)
        remembered[job] = phase
        if previous is None or old == phase:
            continue
        if (old is None or old in STARTING) and phase in STARTING:
            continue
        messages.append((job, phase_message(state, phase, store, old)))
    return Look(messages, remembered)


def keep_unsent(remembered: Mapping[str, str], previous: Mapping[str, str] | None,
                unsent: Collection[str]) -> dict[str, str]:
    """The phases to remember when the messages about `unsent` jobs reached no destination: their
    previous phase (or nothing), so the next look finds the change again and tries again."""
    kept = dict(remembered)
    for job in unsent:
        if previous is not None and job in previous:
            kept[job] = previous[job]
        else:
            kept.pop(job, None)
    return kept


# -- the memory file -------------------------------------------------------------------------------
# {"version": 1, "stores": {STORE: {JOB: PHASE}}}: keyed by store, so one --state file may serve
# several stores; by default each store has a file of its own (`memory_path`), so that cron lines
# watching different stores never race on one file.

def memory_path(cache_home: Path, store: str) -> Path:
    """The default memory file of a store: CACHE/runner/watch-HASH.json, HASH from the store key."""
    return cache_home / "runner" / f"watch-{hashlib.sha256(store.encode()).hexdigest()[:16]}.json"


def _stores(data: bytes) -> dict[str, dict[str, str]]:
    """The file's stores; ValueError, in one line, for anything that is not such a file."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not JSON") from None
    stores = document.get("stores") if isinstance(document, dict) else None
    if not isinstance(stores, dict) or document.get("version") != MEMORY_VERSION:
        raise ValueError(f"not a runner watch file (version {MEMORY_VERSION} with \"stores\")")
    for jobs in stores.values():
        if not isinstance(jobs, dict) or not all(
                isinstance(job, str) and JOB_NAME.fullmatch(job) and isinstance(phase, str) and len(phase) <= 32
                for job, phase in jobs.items()):
            raise ValueError("a store's entry is not a mapping of job names to phases")
    return stores


def recall(data: bytes, store: str) -> dict[str, str] | None:
    """The phases remembered for `store`; None when the file has none for it (a first look)."""
    return _stores(data).get(store)


def memory_document(data: bytes | None, store: str, remembered: Mapping[str, str]) -> bytes:
    """The memory file with `store`'s phases replaced; other stores' entries kept, unless the old
    file (`data`, None when there is none) is not one, in which case it is started afresh."""
    try:
        stores = _stores(data) if data is not None else {}
    except ValueError:
        stores = {}
    stores[store] = dict(sorted(remembered.items()))
    return (json.dumps({"version": MEMORY_VERSION, "stores": stores}, indent=1) + "\n").encode()
