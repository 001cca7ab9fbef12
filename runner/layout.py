"""Key names under `STORE/JOB/` (DESIGN §5). Pure: no I/O, so the layout is tested alone.

Every key is built here from validated parts, and every key read back from a listing is parsed
here, so a name from the store can never climb out of the job's prefix.
"""

from __future__ import annotations

import re

from contract.files import CHECKPOINTS_DIR, TENSORBOARD_DIR, checkpoint_name, manifest_name, parse_checkpoint_name

JOB_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LEASE = re.compile(r"^(\d{9,})\.json$")  # nine digits and more: numbers outgrow the padding


class UnsafeName(ValueError):
    """A name from a spec or the store that would escape its place in the layout."""


def check_job(job: str) -> str:
    if not JOB_NAME.fullmatch(job) or ".." in job:
        raise UnsafeName(f"job name {job!r} is not a safe store key")
    return job


def check_relative(path: str) -> str:
    """A relative path inside a job: no absolute paths, no '..', no empty segments."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise UnsafeName(f"path {path!r} is not a safe relative store path")
    return path


def job_key(job: str, relative: str = "") -> str:
    check_job(job)
    return f"{job}/{check_relative(relative)}" if relative else job


# STORE/_data/NAME/: files the store's jobs share (dataset archives, keypoint caches). `_` can
# never start a job name (JOB_NAME), so no job's keys reach it and `runner ls` never lists it.
DATA = "_data"
DATA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_data_name(name: str) -> str:
    if not DATA_NAME.fullmatch(name) or ".." in name:
        raise UnsafeName(f"data cache name {name!r} is not a safe store key")
    return name


def data_key(name: str, relative: str = "") -> str:
    """A key under STORE/_data/NAME/ (the prefix itself without `relative`)."""
    prefix = f"{DATA}/{check_data_name(name)}"
    return f"{prefix}/{check_relative(relative)}" if relative else prefix


# Keys relative to a job (what JobStore takes); job_key() puts one under STORE/JOB/.
SPEC = "spec.yaml"
STATE = "state.json"
UNREADABLE_STATE = "state.unreadable.json"  # the bytes of a state.json no session could read, kept
CANCEL = "cancel.json"
LEASES = "lease"
CHECKPOINTS = CHECKPOINTS_DIR
LOGS = "logs"
TENSORBOARD = TENSORBOARD_DIR
INPUTS = "inputs"
BAD_SUFFIX = ".bad"
UPLOAD_PREFIX = ".upload-"  # a session's own name for a large object on its way up


def lease_key(number: int) -> str:
    return f"{LEASES}/{number:09d}.json"


def checkpoint_key(step: int) -> str:
    return f"{CHECKPOINTS}/{checkpoint_name(step)}"


def manifest_key(step: int) -> str:
    return f"{CHECKPOINTS}/{manifest_name(step)}"


def bad_marker_key(step: int) -> str:
    """A small object saying the trainer refused this checkpoint; the checkpoint itself is kept."""
    return f"{CHECKPOINTS}/{checkpoint_name(step)}{BAD_SUFFIX}"


def parse_bad_marker_name(name: str) -> int | None:
    """The step a bad-checkpoint marker names; None for anything else."""
    if not name.endswith(BAD_SUFFIX):
        return None
    parsed = parse_checkpoint_name(name.removesuffix(BAD_SUFFIX))
    return parsed[0] if parsed and parsed[1] == "pt" else None


def input_key(name: str) -> str:
    """A file the spec names on the submitting machine, kept for sessions elsewhere (runner/inputs.py)."""
    return f"{INPUTS}/{check_relative(name)}"


def weights_key(name: str) -> str:
    return f"weights/{check_relative(name)}"


def log_key(session: str, name: str) -> str:
    if not SESSION_ID.fullmatch(session):
        raise UnsafeName(f"session id {session!r} is not a safe store key")
    return f"{LOGS}/{session}/{check_relative(name)}"


def tensorboard_key(relative: str) -> str:
    """Where a TensorBoard event file goes: `relative` is its path under WORK/tensorboard, and
    every session's files share this one folder, so TensorBoard reads the whole job as one run
    whose curves continue across sessions. No session-dependent part is needed to keep sessions
    apart: each writer's file name carries its creation time, host and pid. (Stores written
    before this layout have them per session, under `logs/SESSION/tensorboard/`.)"""
    return f"{TENSORBOARD}/{check_relative(relative)}"


def upload_key(key: str, session: str) -> str:
    """Where `session` uploads the large object `key` (a checkpoint, a weights file) before moving
    it onto `key` in one store operation: beside it, under a name no other session writes, so a
    fenced session's late upload never replaces the new holder's object of the same name.

    `checkpoints/step-000001234.pt` -> `checkpoints/.upload-SESSION-step-000001234.pt`; the leading
    dot keeps it out of `parse_checkpoint_name` and of every other parser of listings.
    """
    if not SESSION_ID.fullmatch(session):
        raise UnsafeName(f"session id {session!r} is not a safe store key")
    folder, _, leaf = check_relative(key).rpartition("/")
    temp = f"{UPLOAD_PREFIX}{session}-{leaf}"
    return check_relative(f"{folder}/{temp}" if folder else temp)


UPLOAD_FOLDERS = (CHECKPOINTS, "weights")  # where upload_key puts a session's uploads in flight


def is_upload_name(name: str) -> bool:
    """Whether a name from a listing is a session's upload in flight (or left by one that died)."""
    return name.rpartition("/")[2].startswith(UPLOAD_PREFIX)


def parse_lease_name(name: str) -> int | None:
    """The lease number of a canonical lease name (what `lease_key` writes); None otherwise, so
    `0000000007.json` is not a second spelling of lease 7."""
    match = LEASE.match(name)
    if not match or f"{int(match.group(1)):09d}" != match.group(1):
        return None
    return int(match.group(1))
