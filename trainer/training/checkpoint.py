"""Full training state on disk: written atomically in the background, read back only verified.

Layout (DESIGN §4): `WORK/checkpoints/step-000001234.pt` plus its manifest
`step-000001234.json` (step, epoch, metrics, size, sha256). The data file is written under a
temporary name, fsynced and renamed, and the manifest is written after it the same way: a
checkpoint exists only once its manifest does, and a manifest vouches for a complete file.

The state holds only tensors, numbers, strings, lists, tuples and dicts, so it loads with
`torch.load(weights_only=True)`: a checkpoint from a store is data, never code.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from pydantic import ValidationError

from contract.codes import FAULT_ENOSPC_AT_STEP
from contract.files import atomic_write, checkpoint_name, list_checkpoints, manifest_name, sha256_of
from contract.manifest import Manifest

OnWritten = Callable[[Path, int], None]


class CheckpointError(RuntimeError):
    """A checkpoint that must not be resumed from; the message says why."""


def to_cpu(state: Any) -> Any:
    """A deep copy with every tensor on the CPU, taken synchronously.

    The copy is what makes the background write safe: training goes on mutating the live
    parameters in place while the thread serialises this snapshot.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, Mapping):
        return {key: to_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(value) for value in state)
    return state


def write_checkpoint(directory: Path, state: Mapping[str, Any], step: int, epoch: int, position: int,
                     metrics: Mapping[str, float]) -> Path:
    """Write one checkpoint and its manifest; returns the data file's path."""
    path = directory / checkpoint_name(step)
    full_at = os.environ.get(FAULT_ENOSPC_AT_STEP)

    def save(out: BinaryIO) -> None:
        if full_at and step >= int(full_at):  # test-only: the disk fills up part-way through the file
            out.write(bytes(1 << 20))
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected)", str(path))
        torch.save(dict(state), out)

    atomic_write(path, save)
    manifest = Manifest(step=step, epoch=epoch, position=position, size=path.stat().st_size,
                        sha256=sha256_of(path), written_at=time.time(), metrics=dict(metrics))
    atomic_write(directory / manifest_name(step), manifest.to_json())
    return path


def prune(directory: Path, keep_last: int) -> None:
    """Keep the newest `keep_last`; the manifest goes first so no half-deleted one counts."""
    for step, path in list_checkpoints(directory)[:-keep_last]:
        (directory / manifest_name(step)).unlink(missing_ok=True)
        path.unlink(missing_ok=True)


def read_manifest(checkpoint: Path) -> Manifest:
    """The manifest beside `checkpoint` (same name, `.json`), as `list_checkpoints` pairs them."""
    try:
        return Manifest.read(checkpoint.with_suffix(".json"))
    except FileNotFoundError:
        raise CheckpointError(f"{checkpoint}: no manifest beside it; refusing to resume from an unverified file") from None
    except (OSError, ValidationError) as error:
        raise CheckpointError(f"{checkpoint}: manifest is corrupt ({error})") from None


def load_checkpoint(path: Path) -> tuple[dict[str, Any], Manifest]:
    """The one way to read a checkpoint: size and sha256 against the manifest, then a safe load."""
    path = Path(path)
    manifest = read_manifest(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file is missing")
    size = path.stat().st_size
    if size != manifest.size:
        raise CheckpointError(f"{path}: truncated or overwritten ({size} bytes, manifest says {manifest.size})")
    if sha256_of(path) != manifest.sha256:
        raise CheckpointError(f"{path}: sha256 does not match its manifest; the file is corrupt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError/UnpicklingError/EOFError for bad files
        raise CheckpointError(f"{path}: cannot be loaded safely: {error}") from None
    return state, manifest


def is_disk_full(error: BaseException | None) -> bool:
    """A full disk, however it surfaced: ENOSPC, or torch's serializer failing mid-file (its
    `file write failed` / `unexpected pos` errors hide the errno), anywhere in the cause chain."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if isinstance(error, RuntimeError) and any(t in str(error) for t in ("file write failed", "unexpected pos")):
            return True
        error = error.__cause__ or error.__context__
    return False


def checkpoint_bytes(directory: Path) -> int | None:
    """The size of the newest checkpoint on disk: about what the next one needs."""
    found = list_checkpoints(directory)
    return found[-1][1].stat().st_size if found else None


class BackgroundWriter:
    """Writes checkpoints in a thread so that training stalls only for the CPU copy.

    At most one write is in flight: a new save waits for the previous one, which bounds memory
    to two snapshots and keeps checkpoints on disk in step order.
    """

    def __init__(self, directory: Path, keep_last: int) -> None:
        self.directory = directory
        self.keep_last = keep_last
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: Mapping[str, Any], step: int, epoch: int, position: int,
             metrics: Mapping[str, float], on_written: OnWritten | None = None) -> None:
        snapshot = to_cpu(state)
        self.wait()
        self._thread = threading.Thread(
            target=self._write, args=(snapshot, step, epoch, position, dict(metrics), on_written),
            name=f"checkpoint-{step}", daemon=False,
        )
        self._thread.start()

    def _write(self, snapshot: Mapping[str, Any], step: int, epoch: int, position: int,
               metrics: dict[str, float], on_written: OnWritten | None) -> None:
        try:
            path = write_checkpoint(self.directory, snapshot, step, epoch, position, metrics)
            prune(self.directory, self.keep_last)
            if on_written is not None:
                on_written(path, step)
        except BaseException as error:  # re-raised in the training thread by wait()
            self._error = error

    def wait(self) -> None:
        """Block until the write in flight is on disk; re-raise its failure here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise CheckpointError(f"writing a checkpoint failed: {error}") from error
