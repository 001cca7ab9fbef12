"""The `memory://` store and the check-then-write fallback: fsspec's in-process memory file
system, so these need no disk, network or emulator."""

from __future__ import annotations

import threading

import fsspec

from runner.store import Store
from runner.store.fsspec_backend import FsspecBackend
from runner.store.memory import MemoryBackend

FAST = {"retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}


def test_installed_fsspec_memory_create_mode_refuses_an_existing_name() -> None:
    """What memory.py relies on: fsspec's own exclusive create raises FileExistsError."""
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/store-test-fsspec-create/x", b"a", mode="create")
    try:
        fs.pipe_file("/store-test-fsspec-create/x", b"b", mode="create")
    except FileExistsError:
        pass
    else:
        raise AssertionError("MemoryFileSystem.pipe_file(mode='create') overwrote an existing name")
    assert fs.cat_file("/store-test-fsspec-create/x") == b"a"


def test_memory_store_is_exclusive_within_the_process() -> None:
    store = Store("memory://store-test-exclusive", **FAST)
    job = store.job("demo")
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(job.create_exclusive("lease/000000001.json", b"x")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    job.put_bytes("spec.yaml", b"name: demo\n")
    assert store.list_jobs() == ["demo"]
    assert job.list("lease") == ["000000001.json"]


def test_memory_backend_root_is_the_url_path() -> None:
    backend = MemoryBackend("memory://store-test-root/")
    backend.put_bytes("demo/state.json", b"{}")
    assert fsspec.filesystem("memory").cat_file("/store-test-root/demo/state.json") == b"{}"
    assert backend.exclusive


def test_check_then_write_where_the_backend_has_no_create_mode() -> None:
    """The fallback for an fsspec backend without `mode="create"` still refuses an existing name."""
    backend = FsspecBackend(fsspec.filesystem("memory"), "/store-test-fallback", exclusive=False)
    assert backend.create("demo/lease/000000001.json", b"a") is True
    assert backend.create("demo/lease/000000001.json", b"b") is False
    assert backend.get_bytes("demo/lease/000000001.json") == b"a"
