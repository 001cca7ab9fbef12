"""The one path to the remote store (DESIGN §5): every byte the runner keeps remotely goes through here.

Callers see two promises. First, keys are validated before any I/O and joined under `STORE/JOB/`,
so a name from a spec or a listing can never reach outside the job. Second, one failure policy:
transient errors (network, 5xx, 429, timeouts) are retried with exponential backoff and end in
`StoreUnavailable`; anything else fails at once as `StoreError`. A missing key is not an error
(None / False / []). No message carries credentials: they come from the environment only, and
error text is scrubbed before it is raised or logged.

Backends: a local path (also a Google Drive mount) through the OS, where temp-and-rename gives
whole-object writes; `gs://` through gcsfs; `s3://` through s3fs when installed; `memory://` for
tests. This module never imports torch, nor gcsfs or s3fs unless such a store is opened.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
import os
import random
import re
import shutil
import stat
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, TypeVar

from runner import layout
from runner.spec import check_store_url, store_protocol

log = logging.getLogger(__name__)

T = TypeVar("T")

# Temp files sit beside their target so that the final rename never crosses file systems;
# listings hide them, since a crash mid-write can leave one behind.
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.partial$")

# HTTP statuses worth another try: the server or the path to it is overloaded or briefly down.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# OS errors that come from the network (or a FUSE mount such as Drive losing its connection),
# not from the request itself. EIO is here because Drive's mount reports dropped syncs that way.
TRANSIENT_ERRNO = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.ENOTCONN,
    errno.EAGAIN, errno.EIO,
})

# Errors that say the answer is final, whatever else they also are.
PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)

# link(2) errors meaning "this file system has no hard links" (FUSE mounts such as Drive).
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})

SECRETS = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(//)[^/\s:@]+:[^/\s@]+@"), r"\1<redacted>@"),
    (re.compile(
        r"(?i)((?:access_token|refresh_token|id_token|client_secret|private_key|password|"
        r"x-goog-signature|x-amz-signature|x-amz-security-token|signature|token)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s&,;'\"]+"
    ), r"\1<redacted>"),
)

DRIVE_MOUNT = Path("/content/drive")

# gcsfs methods wrapped in its `retry_request` decorator (as of gcsfs 2026.10).
RETRIED_BY_GCSFS = ("_request", "_get_file_request", "_get_file_concurrent")

MEMORY_CREATE_LOCK = threading.Lock()


class StoreError(RuntimeError):
    """A store operation that failed for good; the message names the key and the cause."""


class StoreUnavailable(StoreError):
    """Transient failures outlasted every retry: the store is down or unreachable for now."""


def is_transient(error: BaseException) -> bool:
    """Whether trying the same request again may succeed.

    Client libraries are only consulted when already loaded: an error cannot come from a library
    that was never imported, and a local store should not pay for importing aiohttp or gcsfs.
    """
    if isinstance(error, PERMANENT):
        return False
    status = http_status(error)
    if status is not None:
        # An expired OAuth token reads as 401 "Invalid Credentials"; the next try refreshes it.
        return status in TRANSIENT_STATUS or (status == 401 and "Invalid Credentials" in str(error))
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(error, _loaded_types(
        ("aiohttp", "ClientError"),
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "Timeout"),
        ("requests.exceptions", "ChunkedEncodingError"),
        ("google.auth.exceptions", "TransportError"),
        ("gcsfs.retry", "ChecksumError"),
    )):
        return True
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNO


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries: aiohttp's errors have `.status`, gcsfs's HttpError `.code`."""
    for attribute in ("status", "code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _loaded_types(*names: tuple[str, str]) -> tuple[type, ...]:
    found = []
    for module_name, attribute in names:
        module = sys.modules.get(module_name)
        kind = getattr(module, attribute, None)
        if isinstance(kind, type):
            found.append(kind)
    return tuple(found)


def redact(text: str) -> str:
    """Strip anything shaped like a credential from text that is about to be raised or logged."""
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def describe(error: BaseException) -> str:
    """One line: the error's type and its text, scrubbed and cut short."""
    text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return redact(f"{type(error).__name__}: {text}" if text else type(error).__name__)[:400]


class RetryPolicy:
    """Exponential backoff with jitter, so that sessions that lost the store together do not
    all come back in the same instant."""

    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float) -> None:
        if retries < 1:
            raise ValueError(f"retries must be at least 1 (the first attempt counts), not {retries}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must not be negative")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def run(self, operation: str, where: str, call: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return call()
            except Exception as error:
                if not is_transient(error):
                    raise StoreError(f"{operation} {where}: {describe(error)}{_hint(error)}") from error
                if attempt >= self.retries:
                    raise StoreUnavailable(
                        f"{operation} {where}: store unavailable after {self.retries} attempts: {describe(error)}"
                    ) from error
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning(
                    "store %s %s failed (%s); attempt %d of %d in %.1f s",
                    operation, where, describe(error), attempt, self.retries, delay,
                )
                time.sleep(delay)


def _hint(error: BaseException) -> str:
    if http_status(error) in (401, 403) or str(error).startswith("Forbidden"):
        return " (check the store's credentials: Colab auth, ADC or GOOGLE_APPLICATION_CREDENTIALS)"
    return ""


class Store:
    """A store root: `gs://bucket/prefix`, `s3://bucket/prefix`, a local path or `memory://`."""

    def __init__(self, url: str, *, retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 8.0) -> None:
        try:
            check_store_url(url)
        except ValueError as error:
            raise StoreError(f"store URL {error}") from None
        self.url = url
        protocol = store_protocol(url)
        self.protocol = "gs" if protocol == "gcs" else protocol
        self._policy = RetryPolicy(retries, backoff_s, max_backoff_s)
        self._backend: Backend = open_backend(self.protocol, url)
        self.supports_exclusive_create = self._backend.exclusive

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def job(self, name: str) -> JobStore:
        return JobStore(self._backend, self._policy, layout.check_job(name), self.url)

    def list_jobs(self) -> list[str]:
        """Jobs under the root that were submitted (have a spec); other folders are ignored."""
        def jobs() -> list[str]:
            names = [n for n in self._backend.list_dirs("") if is_job_name(n)]
            return sorted(n for n in names if self._backend.size(layout.job_key(n, layout.SPEC)) is not None)
        return self._policy.run("list_jobs", self.url, jobs)


def is_job_name(name: str) -> bool:
    try:
        layout.check_job(name)
    except layout.UnsafeName:
        return False
    return True


class JobStore:
    """Everything under STORE/JOB/; keys are relative to it and validated with layout.check_relative.

    Nothing outside is ever written or deleted: every key is checked before the first request.
    """

    def __init__(self, backend: Backend, policy: RetryPolicy, name: str, url: str) -> None:
        self._backend = backend
        self._policy = policy
        self.name = name
        self.url = url
        self.supports_exclusive_create = backend.exclusive

    def __repr__(self) -> str:
        return f"JobStore({self.name!r})"

    def _key(self, relative: str) -> str:
        """The full key; an empty key is refused here too, since it would name the job itself."""
        return layout.job_key(self.name, layout.check_relative(relative))

    def _run(self, operation: str, relative: str, call: Callable[[], T]) -> T:
        return self._policy.run(operation, f"{self.name}/{relative}", call)

    def put_file(self, local: Path, key: str) -> None:
        """Upload a file from disk without reading it into memory; the object appears whole or not at all."""
        path = self._key(key)
        self._run("put_file", key, lambda: self._backend.put_file(Path(local), path))

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._key(key)
        self._run("put_bytes", key, lambda: self._backend.put_bytes(path, data))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has that name: True if this call created it.

        A retried create can find the name taken by its own earlier attempt, whose reply was lost;
        the stored bytes tell, so callers make `data` unique to the writer (a lease names its
        session). Retried on transient errors only.
        """
        path = self._key(key)
        attempts = 0

        def create() -> bool:
            nonlocal attempts
            attempts += 1
            if self._backend.create(path, data):
                return True
            return attempts > 1 and self._backend.get_bytes(path) == data

        return self._run("create_exclusive", key, create)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._key(key)
        return self._run("get_bytes", key, lambda: self._backend.get_bytes(path))

    def get_file(self, key: str, local: Path) -> bool:
        """Download to `local` via a temp file beside it, so `local` is never half written."""
        path = self._key(key)
        return self._run("get_file", key, lambda: self._backend.get_file(path, Path(local)))

    def size(self, key: str) -> int | None:
        path = self._key(key)
        return self._run("size", key, lambda: self._backend.size(path))

    def list(self, prefix: str) -> list[str]:
        """Names of the objects directly under `prefix` ('' is the job root), sorted."""
        path = self._key(prefix) if prefix else self.name
        return self._run("list", prefix or ".", lambda: self._backend.list(path))

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the folders directly under `prefix` (e.g. the sessions under `logs`), sorted.

        On object stores a folder is only a shared name prefix, so one exists while it holds an object.
        """
        path = self._key(prefix) if prefix else self.name
        return self._run("list_dirs", prefix or ".", lambda: self._backend.list_dirs(path))

    def delete(self, key: str) -> None:
        path = self._key(key)
        self._run("delete", key, lambda: self._backend.delete(path))

    def exists(self, key: str) -> bool:
        return self.size(key) is not None


class Backend(ABC):
    """Raw operations on paths relative to the store root; missing keys are answered, not raised."""

    exclusive: bool

    @abstractmethod
    def put_file(self, local: Path, path: str) -> None: ...

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


def temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")


def write_atomically(target: Path, write: Callable[[Any], None]) -> None:
    """Write through a temp file, fsync, then rename: readers see the old object or the new one.

    The fsync keeps a machine crash from leaving a renamed but empty file behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target)
    try:
        with temp.open("wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


class LocalBackend(Backend):
    """A directory through the OS: a laptop's ./runs or a Google Drive mount on Colab.

    A Drive mount is local to one machine and syncs in the background, so an exclusive create
    there excludes only processes on the same machine: it is reported as not exclusive.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exclusive = not (root == DRIVE_MOUNT or DRIVE_MOUNT in root.parents)

    def _path(self, path: str) -> Path:
        return self.root / path if path else self.root

    def put_file(self, local: Path, path: str) -> None:
        with local.open("rb") as source:
            write_atomically(self._path(path), lambda out: shutil.copyfileobj(source, out, 1 << 20))

    def put_bytes(self, path: str, data: bytes) -> None:
        write_atomically(self._path(path), lambda out: out.write(data))

    def create(self, path: str, data: bytes) -> bool:
        """Write a temp file, then hard-link it to the name: link(2) fails if the name exists, and
        the name only ever points at complete content. Without hard links, O_EXCL on the name."""
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_beside(target)
        try:
            with temp.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temp, target)
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno not in NO_HARD_LINKS:
                    raise
                return self._create_in_place(target, data)
            return True
        finally:
            temp.unlink(missing_ok=True)

    @staticmethod
    def _create_in_place(target: Path, data: bytes) -> bool:
        """O_EXCL still decides the race, but a reader may see the file before its bytes land,
        so readers of such a store must take an empty or unparsable object as not yet written."""
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return True

    def get_bytes(self, path: str) -> bytes | None:
        try:
            return self._path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def get_file(self, path: str, local: Path) -> bool:
        try:
            source = self._path(path).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            return False
        with source:
            write_atomically(local, lambda out: shutil.copyfileobj(source, out, 1 << 20))
        return True

    def size(self, path: str) -> int | None:
        try:
            status = self._path(path).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    def _entries(self, path: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self._path(path)) as entries:
                return [e for e in entries if not TEMP_NAME.match(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list(self, path: str) -> list[str]:
        return sorted(e.name for e in self._entries(path) if e.is_file())

    def list_dirs(self, path: str) -> list[str]:
        return sorted(e.name for e in self._entries(path) if e.is_dir())

    def delete(self, path: str) -> None:
        try:
            self._path(path).unlink()
        except FileNotFoundError:
            pass


class FsspecBackend(Backend):
    """An object store through an fsspec file system; objects are whole by the store's own
    semantics (an upload becomes visible only when complete)."""

    def __init__(self, fs: Any, root: str, exclusive: bool) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.exclusive = exclusive

    def _path(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def put_file(self, local: Path, path: str) -> None:
        self.fs.put_file(str(local), self._path(path))

    def put_bytes(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(path), data)

    def create(self, path: str, data: bytes) -> bool:
        """GCS `ifGenerationMatch=0` / S3 `If-None-Match: *`: the server decides, 412 means taken.

        Without that support, check then write: two writers in the same instant can both win,
        which `Store.supports_exclusive_create` reports.
        """
        if not self.exclusive:
            if self.size(path) is not None:
                return False
            self.put_bytes(path, data)
            return True
        try:
            self.fs.pipe_file(self._path(path), data, mode="create")
        except FileExistsError:
            return False
        return True

    def get_bytes(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(path))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def get_file(self, path: str, local: Path) -> bool:
        local.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_beside(local)
        try:
            try:
                self.fs.get_file(self._path(path), str(temp))
            except (FileNotFoundError, IsADirectoryError):
                return False
            os.replace(temp, local)
            return True
        finally:
            temp.unlink(missing_ok=True)

    def size(self, path: str) -> int | None:
        try:
            info = self.fs.info(self._path(path))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def _children(self, path: str, kind: str) -> list[str]:
        """Direct children of one kind. The parent check matters: listing an object's own name
        returns the object itself on some stores."""
        base = self._path(path)
        try:
            entries = self.fs.ls(base, detail=True)
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            parent, _, leaf = entry["name"].rstrip("/").rpartition("/")
            if entry.get("type") == kind and parent == base and leaf:
                names.append(leaf)
        return sorted(names)

    def list(self, path: str) -> list[str]:
        return self._children(path, "file")

    def list_dirs(self, path: str) -> list[str]:
        return self._children(path, "directory")

    def delete(self, path: str) -> None:
        try:
            self.fs.rm_file(self._path(path))
        except FileNotFoundError:
            pass


class MemoryBackend(FsspecBackend):
    """fsspec's memory file system: one dict per process, so a process-wide lock is exclusive."""

    def create(self, path: str, data: bytes) -> bool:
        with MEMORY_CREATE_LOCK:
            if self.fs.exists(self._path(path)):
                return False
            self.fs.pipe_file(self._path(path), data)
            return True


def open_backend(protocol: str, url: str) -> Backend:
    if protocol == "file":
        location = url.split("://", 1)[1] if "://" in url else url
        return LocalBackend(Path(location).expanduser().absolute())
    location = url.split("://", 1)[1].strip("/")
    import fsspec

    if protocol == "memory":
        fs = fsspec.filesystem("memory")
        return MemoryBackend(fs, fs._strip_protocol(url), exclusive=True)
    if not location:
        raise StoreError(f"store URL {url!r} names no bucket; use {protocol}://bucket/prefix")
    if protocol == "gs":
        fs = gcs_filesystem()
    else:
        fs = fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False)
    return FsspecBackend(fs, location, exclusive=has_create_mode(fs))


def has_create_mode(fs: Any) -> bool:
    """Whether `pipe_file(mode="create")` reaches the server as a precondition.

    fsspec backends gained the mode in 2025; an older s3fs would drop the unknown argument in its
    parameter filter and overwrite silently, so the signature is checked rather than trusted.
    """
    return "mode" in inspect.signature(fs._pipe_file).parameters


def gcs_filesystem() -> Any:
    """A gcsfs file system of our own, not fsspec's shared cached one.

    Credentials: the emulator (STORAGE_EMULATOR_HOST) takes none; otherwise gcsfs's default chain
    (Colab auth, ADC, GOOGLE_APPLICATION_CREDENTIALS). Listings are never cached, since another
    session writes the same prefix. Each request has connect and read timeouts: gcsfs sets none,
    and a half-open connection would otherwise stall the supervisor's sync forever.
    """
    import aiohttp

    options: dict[str, Any] = {
        "use_listings_cache": False,
        "skip_instance_cache": True,
        "requests_timeout": aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
    }
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator not in ("", "default"):
        options["token"] = "anon"
        options["endpoint_url"] = emulator if emulator.startswith(("http://", "https://")) else f"http://{emulator}"
    return single_try_gcs_class()(**options)


@functools.cache
def single_try_gcs_class() -> type:
    """gcsfs's file system without its own retry loop, so that our policy is the only one.

    gcsfs retries each request six times with sleeps growing to 16 s, about 33 s per call on a
    refused connection, beneath our retries: an outage took minutes to report and the lease could
    not be renewed in time. gcsfs also hides which attempt landed, which `create_exclusive` needs.
    The core class is used directly: the experimental HNS subclass that `import gcsfs` may pick
    probes bucket layout on every call, which stalls against an emulator. Should a gcsfs release
    drop a wrapper, that method keeps gcsfs's retries: slower to report an outage, still correct.
    """
    from gcsfs.core import GCSFileSystem

    unwrapped = {
        name: getattr(GCSFileSystem, name).__wrapped__
        for name in RETRIED_BY_GCSFS
        if hasattr(getattr(GCSFileSystem, name, None), "__wrapped__")
    }
    return type("SingleTryGCSFileSystem", (GCSFileSystem,), unwrapped)
