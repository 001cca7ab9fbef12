"""Work-dir file names and the two file primitives both sides use: atomic writes and sha256.

Layout of the trainer's work dir (DESIGN §4): `checkpoints/step-000001234.pt` with its manifest
`step-000001234.json`, `events.jsonl`, `trainer.log`, `weights/`, `tensorboard/`, and the
supervisor's `attempt-N/config.yaml` + `attempt-N/stderr.log`.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_DIR = "weights"
TENSORBOARD_DIR = "tensorboard"
EVENTS_FILE = "events.jsonl"
TRAINER_LOG = "trainer.log"
SUPERVISOR_LOG = "supervisor.log"  # the runner's own log of the session, uploaded like the trainer's
ATTEMPT_CONFIG = "config.yaml"
ATTEMPT_STDERR = "stderr.log"

_CHECKPOINT = re.compile(r"^step-(\d{9})\.(pt|json)$")

# Temp files sit beside their target so that the final rename never crosses file systems;
# listings hide them, since a crash mid-write can leave one behind.
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.partial$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.pt"


def manifest_name(step: int) -> str:
    return f"step-{step:09d}.json"


def parse_checkpoint_name(name: str) -> tuple[int, str] | None:
    """(step, 'pt' or 'json') for a checkpoint or manifest file name; None for anything else."""
    match = _CHECKPOINT.match(name)
    return (int(match.group(1)), match.group(2)) if match else None


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in `directory` that have their manifest, oldest first.

    A data file without a manifest does not count: it may still be being written.
    """
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        parsed = parse_checkpoint_name(path.name)
        if parsed and parsed[1] == "pt" and path.with_suffix(".json").exists():
            found.append((parsed[0], path))
    return sorted(found)


def attempt_dir(workdir: Path, attempt: int) -> Path:
    return workdir / f"attempt-{attempt}"


def temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable: without it a power cut can undo the rename."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `data` (bytes, or a function writing to a binary file) so readers see the old file
    or the new one, never a torn one, and a machine crash keeps whichever it reports.

    Temp file beside the target, fsync, rename, fsync of the directory.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target)
    try:
        with temp.open("wb") as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                out.write(data)
            else:
                data(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def sha256_of(path: Path) -> str:
    """The digest manifests carry; read in chunks so a 750 MiB checkpoint needs no 750 MiB buffer."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
