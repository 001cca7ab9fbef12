"""`memory://` stores for tests: fsspec's `MemoryFileSystem`, one dict shared by the process.

Exclusive create is fsspec's own `pipe_file(path, data, mode="create")`, which raises
`FileExistsError` when the name exists. fsspec checks and then writes, without a lock (as of
fsspec 2026.9), so two threads can both pass the check: a process-wide lock around the call makes
it exclusive, which within one process is all a memory store needs.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

from runner.store.base import RootMode
from runner.store.fsspec_backend import FsspecBackend

MEMORY_CREATE_LOCK = threading.Lock()


class MemoryBackend(FsspecBackend):
    """fsspec's memory file system: one dict per process, so a process-wide lock is exclusive."""

    def __init__(self, url: str) -> None:
        import fsspec

        fs, root = fsspec.url_to_fs(url)
        super().__init__(fs, root, exclusive=True)

    def root_problem(self, mode: RootMode) -> str | None:
        return None  # one dict per process: every root exists

    def create(self, path: str, data: bytes) -> bool:
        with MEMORY_CREATE_LOCK:
            try:
                self.fs.pipe_file(self._path(path), data, mode="create")
            except FileExistsError:
                return False
            return True

    def _download(self, remote: str, out: BinaryIO) -> None:
        """Into the open file: given a path, fsspec would make a folder there for a folder key."""
        self.fs.get_file(remote, out)
