"""The one path to the remote store (DESIGN §5): every byte the runner keeps remotely goes through here.

Callers see two promises. First, keys are validated before any I/O and joined under `STORE/JOB/`,
so a name from a spec or a listing can never reach outside the job. Second, one failure policy:
transient errors (network, 5xx, 429, timeouts) are retried with exponential backoff and end in
`StoreUnavailable`; anything else fails at once as `StoreError`. A missing key is not an error
(None / False / []). No message carries credentials: they come from the environment only, and
error text is scrubbed before it is raised or logged.

Lives here:
    jobs.py            `Store` (a root), `JobStore` (one job's keys) and `DataStore` (the shared
                       data cache's keys): the facade callers use
    retry.py           `RetryPolicy`, `is_transient`, `StoreError` / `StoreUnavailable`, redaction
    base.py            the `Backend` protocol and the choice of backend by URL
    fsspec_backend.py  any fsspec object store (`s3://` through s3fs), and the others' base
    local.py           a local path or Drive mount: fsspec's LocalFileSystem plus atomic put and
                       hard-link exclusive create
    memory.py          `memory://` for tests: fsspec's MemoryFileSystem
    gcs.py             `gs://` through gcsfs, with gcsfs's own retry loop bypassed

Must not import: torch, `trainer`; nor gcsfs, s3fs or aiohttp unless such a store is opened (each
backend module is imported when its kind of store is opened). Callers import from this package,
not from its modules.
"""

from runner.store.base import RootMode
from runner.store.jobs import DataStore, JobStore, Store
from runner.store.retry import (RetryPolicy, StoreError, StoreMissing, StoreUnavailable, describe, is_transient,
                                redact)

__all__ = [
    "DataStore",
    "JobStore",
    "RetryPolicy",
    "RootMode",
    "Store",
    "StoreError",
    "StoreMissing",
    "StoreUnavailable",
    "describe",
    "is_transient",
    "redact",
]
