"""The job facade: `Store` (a store root), `JobStore` (everything under STORE/JOB/) and
`DataStore` (the shared data cache under STORE/_data/NAME/).

Keys are validated with `runner.layout` before any request and joined under STORE/JOB/, so a name
from a spec or a listing can never reach outside the job; every call runs under one
`RetryPolicy`, so callers see only `StoreError` / `StoreUnavailable` and answers for missing keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from runner import layout
from runner.spec import check_store_url, store_protocol
from runner.store.base import PATIENT, QUICK, Backend, Progress, RootMode, Timeouts, open_backend
from runner.store.retry import RetryPolicy, StoreError, StoreMissing

T = TypeVar("T")


class Store:
    """A store root: `gs://bucket/prefix`, `s3://bucket/prefix`, a local path or `memory://`."""

    def __init__(self, url: str, *, retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 timeouts: Timeouts = PATIENT) -> None:
        try:
            check_store_url(url)
        except ValueError as error:
            raise StoreError(f"store URL {error}") from None
        self.url = url
        protocol = store_protocol(url)
        self.protocol = "gs" if protocol == "gcs" else protocol
        self._policy = RetryPolicy(retries, backoff_s, max_backoff_s)
        self._backend: Backend = open_backend(self.protocol, url, timeouts)
        self.supports_exclusive_create = self._backend.exclusive

    @classmethod
    def quick(cls, url: str) -> Store:
        """For a person waiting at a prompt: an unreachable store is one `StoreUnavailable` within
        30 s (two attempts under `QUICK` timeouts), not minutes of a supervisor's patience."""
        return cls(url, retries=2, backoff_s=0.5, max_backoff_s=1.0, timeouts=QUICK)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def check_root(self, mode: RootMode = "read") -> None:
        """Raise `StoreMissing` (one line, with the fix) when the root cannot be used for `mode`;
        called before anything is written, so nothing lands where it would be lost."""
        problem = self._policy.run("check", self.url, lambda: self._backend.root_problem(mode))
        if problem:
            raise StoreMissing(problem)

    def job(self, name: str) -> JobStore:
        return JobStore(self._backend, self._policy, layout.check_job(name), self.url)

    def data(self, name: str) -> DataStore:
        """STORE/_data/NAME/: the data cache the store's jobs share."""
        return DataStore(self._backend, self._policy, name, self.url)

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

    def put_file(self, local: Path, key: str, progress: Progress | None = None) -> None:
        """Upload a file from disk without reading it into memory; the object appears whole or not
        at all. `progress` hears the bytes sent so far (from 0 again on a retry)."""
        path = self._key(key)
        self._run("put_file", key, lambda: self._backend.put_file(Path(local), path, progress))

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

    def move(self, src_key: str, dst_key: str) -> None:
        """Put the object at `src_key` under `dst_key` (replacing what is there) in one store
        operation: a rename on a local store, a server-side copy and delete on an object store.

        A retried move can find the source gone because its own earlier attempt landed and the
        reply was lost: with the destination present, that counts as done (the source is a name
        only its writer uses). A source missing on the first attempt is a `StoreError`.
        """
        src, dst = self._key(src_key), self._key(dst_key)
        attempts = 0

        def move() -> None:
            nonlocal attempts
            attempts += 1
            if self._backend.move(src, dst):
                return
            if attempts > 1 and self._backend.size(dst) is not None:
                return
            raise FileNotFoundError(f"no object {src_key} to move to {dst_key}")

        self._run("move", src_key, move)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def data(self, name: str) -> DataStore:
        """STORE/_data/NAME/ on this job's store, with its retry policy: the data cache a session shares."""
        return DataStore(self._backend, self._policy, name, self.url)


class DataStore(JobStore):
    """Everything under STORE/_data/NAME/ (DESIGN §5): dataset files the store's jobs share.

    Keys are relative to it and validated as a job's are, so no name from a plan or a manifest
    reaches outside. Jobs sharing it cannot coordinate deletes, so it is only ever added to:
    `delete` and `move` are refused.
    """

    def __init__(self, backend: Backend, policy: RetryPolicy, name: str, url: str) -> None:
        super().__init__(backend, policy, layout.data_key(name), url)
        self.cache = name

    def __repr__(self) -> str:
        return f"DataStore({self.cache!r})"

    def _key(self, relative: str) -> str:
        return layout.data_key(self.cache, layout.check_relative(relative))

    def delete(self, key: str) -> None:
        raise StoreError(f"{self.name}/{key}: the shared data cache is never deleted from")

    def move(self, src_key: str, dst_key: str) -> None:
        raise StoreError(f"{self.name}/{src_key}: the shared data cache is never moved within")
