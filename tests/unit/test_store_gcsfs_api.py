"""What runner/store/gcs.py needs from the installed gcsfs, checked without a network.

gcsfs offers no public switch for its own retry loop, so the store takes the undecorated request
methods from `__wrapped__` (see `single_try_gcs_class`). pyproject.toml pins gcsfs to the series
this was tested with; these tests fail, with a message saying what moved, when a gcsfs release
changes what that bypass depends on. Without it an outage takes about 33 s per request to report
instead of our policy's seconds, and the lease may not be renewed in time.
"""

from __future__ import annotations

import inspect
from typing import Any

import gcsfs
import pytest
from gcsfs import retry as gcsfs_retry
from gcsfs.core import GCSFileSystem

from runner.store.fsspec_backend import has_create_mode
from runner.store.gcs import RETRIED_BY_GCSFS, single_try_gcs_class, unwrapped_methods

WHY = (
    "runner/store/gcs.py bypasses gcsfs's retry loop through these methods' __wrapped__ "
    f"(tested with the gcsfs series pinned in pyproject.toml; installed: gcsfs {gcsfs.__version__}). "
    "Re-check single_try_gcs_class and RETRIED_BY_GCSFS against this gcsfs, then update the pin."
)


def retried_by(function: Any) -> bool:
    """Whether `function` is wrapped by gcsfs's `retry_request`: the `decorator` package keeps the
    caller in the wrapper's closure."""
    caller = getattr(gcsfs_retry.retry_request, "__wrapped__", None)
    cells = getattr(function, "__closure__", None) or ()
    return caller is not None and any(cell.cell_contents is caller for cell in cells)


@pytest.mark.parametrize("name", RETRIED_BY_GCSFS)
def test_retried_method_still_has_its_undecorated_function(name: str) -> None:
    method = getattr(GCSFileSystem, name, None)
    assert method is not None, f"gcsfs.core.GCSFileSystem.{name} is gone. {WHY}"
    inner = getattr(method, "__wrapped__", None)
    assert inner is not None, f"GCSFileSystem.{name} has no __wrapped__: its retry decorator changed. {WHY}"
    assert inspect.iscoroutinefunction(inner), f"GCSFileSystem.{name}.__wrapped__ is not a coroutine function. {WHY}"
    assert inner.__name__ == name, f"GCSFileSystem.{name}.__wrapped__ is {inner.__qualname__}. {WHY}"


def test_the_bypassed_methods_are_those_gcsfs_retries() -> None:
    """A retried method that the list misses would keep gcsfs's loop beneath ours."""
    caller = getattr(gcsfs_retry.retry_request, "__wrapped__", None)
    assert caller is not None, f"gcsfs.retry.retry_request is no longer made with the decorator package. {WHY}"
    retried = sorted(
        name for name, value in inspect.getmembers(GCSFileSystem, inspect.isfunction) if retried_by(value)
    )
    assert retried == sorted(RETRIED_BY_GCSFS), f"gcsfs now retries {retried}. {WHY}"


def test_single_try_class_has_no_retry_loop() -> None:
    single = single_try_gcs_class()
    assert issubclass(single, GCSFileSystem)
    assert set(unwrapped_methods(GCSFileSystem)) == set(RETRIED_BY_GCSFS), WHY
    for name in RETRIED_BY_GCSFS:
        method = getattr(single, name)
        assert method is getattr(GCSFileSystem, name).__wrapped__, f"{name} still goes through gcsfs's retries. {WHY}"
        assert not retried_by(method), f"{name} still goes through gcsfs's retries. {WHY}"


def test_pipe_file_passes_create_mode_on() -> None:
    """The lease's exclusive create is gcsfs's public `pipe_file(..., mode="create")`."""
    fs = single_try_gcs_class()(token="anon", skip_instance_cache=True)
    assert has_create_mode(fs), (
        f"gcsfs {gcsfs.__version__}: pipe_file takes no `mode`, so the store would report gs:// "
        "as not exclusive and lease creation would check then write"
    )
