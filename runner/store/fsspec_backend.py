"""An object store through any fsspec file system (`s3://` through s3fs, and the base of the
GCS, memory and local backends): objects are whole by the store's own semantics, since an upload
becomes visible only when complete. Exclusive create is the server's `pipe_file(mode="create")`
(GCS `ifGenerationMatch=0`, S3 `If-None-Match: *`) where the file system passes it on.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, BinaryIO

from fsspec.callbacks import Callback

from contract.files import atomic_write
from runner.store.base import Backend, Progress, RootMode


class ProgressCallback(Callback):
    """fsspec's transfer callback, passing the bytes sent so far on to a `Progress`."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def call(self, *args: Any, **kwargs: Any) -> None:
        self.progress(int(self.value))


class FsspecBackend(Backend):
    """An object store through an fsspec file system; objects are whole by the store's own
    semantics (an upload becomes visible only when complete)."""

    put_options: dict[str, Any] = {}  # client-specific put_file options (GCS: its chunk size)

    def __init__(self, fs: Any, root: str, exclusive: bool) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.exclusive = exclusive

    def _path(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def put_file(self, local: Path, path: str, progress: Progress | None = None) -> None:
        options = {**self.put_options, **({"callback": ProgressCallback(progress)} if progress else {})}
        self.fs.put_file(str(local), self._path(path), **options)

    def put_bytes(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(path), data)

    def root_problem(self, mode: RootMode) -> str | None:
        """An object store's root is a bucket (and a prefix, which needs no creating): a missing
        bucket would otherwise read as an empty store, and fail only at the first write."""
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.info(bucket)
        except FileNotFoundError:
            return (f"bucket {bucket!r} does not exist, or these credentials cannot see it: create it "
                    f"(`gcloud storage buckets create gs://{bucket}`) or fix the store URL")
        return None

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
        """Through `contract.files.atomic_write`, so `local` is never half written. Object-store
        clients download to a path, not a file object, so the download goes to the temp file by
        its name; the fsync on atomic_write's own handle covers it, since fsync is per file."""
        try:
            atomic_write(Path(local), lambda out: self._download(self._path(path), out))
        except (FileNotFoundError, IsADirectoryError):
            return False
        return True

    def _download(self, remote: str, out: BinaryIO) -> None:
        self.fs.get_file(remote, out.name)

    def size(self, path: str) -> int | None:
        try:
            info = self.fs.info(self._path(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def _entries(self, path: str) -> tuple[str, list[dict[str, Any]]]:
        base = self._path(path)
        try:
            return base, self.fs.ls(base, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return base, []

    def _children(self, path: str, kind: str) -> list[str]:
        """Direct children of one kind. The parent check matters: listing an object's own name
        returns the object itself on some stores."""
        base, entries = self._entries(path)
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

    def move(self, src: str, dst: str) -> bool:
        """A server-side copy, then the source deleted: object stores have no rename, but the copy
        never passes through this machine (GCS `rewriteTo`, S3 `CopyObject`) and the destination
        appears whole. A copy that fails leaves the source for another try; a failed delete leaves
        it behind, which `JobStore.move` tells from a move that never happened."""
        try:
            self.fs.cp_file(self._path(src), self._path(dst))
        except FileNotFoundError:
            return False
        self.delete(src)
        return True


def has_create_mode(fs: Any) -> bool:
    """Whether `pipe_file(mode="create")` reaches the server as a precondition.

    fsspec backends gained the mode in 2025; an older s3fs would drop the unknown argument in its
    parameter filter and overwrite silently, so the signature is checked rather than trusted. An
    async file system's public `pipe_file` is fsspec's sync wrapper of its `_pipe_file`, made with
    functools.wraps, so its signature is that of the client's own implementation.
    """
    return "mode" in inspect.signature(fs.pipe_file).parameters
