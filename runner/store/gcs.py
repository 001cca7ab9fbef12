"""`gs://` stores through gcsfs, imported only when such a store is opened.

Public gcsfs API throughout (`pipe_file(..., mode="create")` for the lease's exclusive create,
which gcsfs sends as `ifGenerationMatch=0`; `put_file`, `cat_file`, `get_file`, `cp_file`, `info`, `ls`,
`rm_file`), with one exception: gcsfs has no public way to turn off its own retry loop, so
`single_try_gcs_class` takes the undecorated request methods from their `__wrapped__` attribute.
pyproject.toml pins gcsfs to the series this was tested with, and
tests/unit/test_store_gcsfs_api.py fails with a clear message when a gcsfs release moves them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from runner.store.base import Timeouts
from runner.store.fsspec_backend import FsspecBackend, has_create_mode

# gcsfs methods wrapped in its `retry_request` decorator (as of gcsfs 2026.10).
RETRIED_BY_GCSFS = ("_request", "_get_file_request", "_get_file_concurrent")


# Resumable uploads go up in chunks of this size (a multiple of 256 KiB, as GCS requires): each
# one is a request and a progress report, so a 750 MiB checkpoint reports 47 times (gcsfs: 50 MiB).
UPLOAD_CHUNK = 16 * 2**20


class GcsBackend(FsspecBackend):
    """A bucket and prefix (`bucket/prefix`, without `gs://`) on GCS or its emulator."""

    put_options = {"chunksize": UPLOAD_CHUNK}

    def __init__(self, location: str, timeouts: Timeouts) -> None:
        fs = gcs_filesystem(timeouts)
        super().__init__(fs, location, exclusive=has_create_mode(fs))


def gcs_filesystem(timeouts: Timeouts) -> Any:
    """A gcsfs file system of our own, not fsspec's shared cached one.

    Credentials: the emulator (STORAGE_EMULATOR_HOST) takes none; otherwise gcsfs's default chain
    (Colab auth, ADC, GOOGLE_APPLICATION_CREDENTIALS). Listings are never cached, since another
    session writes the same prefix. Each request has connect and read timeouts (`timeouts`): gcsfs
    sets none, and a half-open connection would otherwise stall the supervisor's sync forever.
    """
    import aiohttp

    options: dict[str, Any] = {
        "use_listings_cache": False,
        "skip_instance_cache": True,
        "requests_timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s,
                                                 sock_read=timeouts.read_s),
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
    drop a wrapper, that method keeps gcsfs's retries: slower to report an outage, still correct
    (the unit test on gcsfs's API fails first).
    """
    from gcsfs.core import GCSFileSystem

    return type("SingleTryGCSFileSystem", (GCSFileSystem,), unwrapped_methods(GCSFileSystem))


def unwrapped_methods(cls: type) -> dict[str, Any]:
    """The undecorated functions behind gcsfs's retrying methods, those that have one."""
    return {
        name: getattr(cls, name).__wrapped__
        for name in RETRIED_BY_GCSFS
        if hasattr(getattr(cls, name, None), "__wrapped__")
    }
