"""The backend protocol: raw operations on paths relative to the store root, and the choice of
backend by URL. Backends answer a missing key (None / False / []) instead of raising; they know
nothing of jobs, keys or retries, which `jobs.JobStore` adds on top.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from runner.store.retry import StoreError

# What a command will do with a store's root: read what is there; write (submit: a local root may
# be made if its parent folder exists); create (submit --create: any missing folders are made).
RootMode = Literal["read", "write", "create"]

# Told the bytes sent so far while a file uploads (a 750 MiB checkpoint takes minutes).
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Timeouts:
    """How long one request to a networked store may wait: to connect, and for each read of its
    answer. Without them a half-open connection or a store that drops packets stalls a call for
    minutes (gcsfs sets none)."""

    connect_s: float
    read_s: float


# A supervisor's uploads: a slow link's long chunk must not be cut off.
PATIENT = Timeouts(connect_s=30, read_s=120)
# A person waiting at a prompt (status, logs, the first read of submit and attach): an unreachable
# store is reported within 30 s (two attempts of at most 10 s each, and the pause between).
QUICK = Timeouts(connect_s=5, read_s=10)


class Backend(ABC):
    """Raw operations on paths relative to the store root; missing keys are answered, not raised."""

    exclusive: bool

    @abstractmethod
    def put_file(self, local: Path, path: str, progress: Progress | None = None) -> None:
        """Upload without reading the file into memory; `progress` hears the bytes sent so far."""

    @abstractmethod
    def put_bytes(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def create(self, path: str, data: bytes) -> bool:
        """False when the name already exists."""

    @abstractmethod
    def get_bytes(self, path: str) -> bytes | None: ...

    @abstractmethod
    def get_file(self, path: str, local: Path) -> bool: ...

    @abstractmethod
    def size(self, path: str) -> int | None: ...

    @abstractmethod
    def list(self, path: str) -> list[str]: ...

    @abstractmethod
    def list_dirs(self, path: str) -> list[str]: ...

    @abstractmethod
    def delete(self, path: str) -> None: ...

    def root_problem(self, mode: RootMode) -> str | None:
        """Why the store's root cannot be used as it is for `mode` (a bucket that does not exist, a
        Drive that is not mounted, a local root that is not there), or None; asked before anything
        is written."""
        return None

    @abstractmethod
    def move(self, src: str, dst: str) -> bool:
        """Put the object at `src` under the name `dst` (replacing what is there) in one store
        operation, never by uploading again: `dst` shows its old object or the whole new one.
        False when `src` is not an object."""


def open_backend(protocol: str, url: str, timeouts: Timeouts = PATIENT) -> Backend:
    """The backend for a checked store URL. Each backend module is imported only when its kind of
    store is opened, so a local store never loads gcsfs (nor a `gs://` store s3fs)."""
    if protocol == "file":
        from runner.store.local import LocalBackend

        location = url.split("://", 1)[1] if "://" in url else url
        return LocalBackend(Path(location).expanduser().absolute())
    if protocol == "memory":
        from runner.store.memory import MemoryBackend

        return MemoryBackend(url)
    location = url.split("://", 1)[1].strip("/")
    if not location:
        raise StoreError(f"store URL {url!r} names no bucket; use {protocol}://bucket/prefix")
    if protocol == "gs":
        from runner.store.gcs import GcsBackend

        return GcsBackend(location, timeouts)
    from runner.store.fsspec_backend import FsspecBackend, has_create_mode

    import fsspec

    options: dict = {"skip_instance_cache": True, "use_listings_cache": False}
    if protocol == "s3":  # botocore's own timeouts, passed through s3fs
        options["config_kwargs"] = {"connect_timeout": timeouts.connect_s, "read_timeout": timeouts.read_s}
    fs = fsspec.filesystem(protocol, **options)
    return FsspecBackend(fs, location, exclusive=has_create_mode(fs))
