"""A store root on a local path: a laptop's ./runs, or a Google Drive mount on Colab.

Reads, listings, sizes and deletes go through fsspec's `LocalFileSystem`. Two things it lacks
are kept here: whole-object writes (`contract.files.atomic_write`: temp beside the target, fsync,
rename, fsync of the folder; fsspec's local `put_file` copies in place) and an exclusive create
that never shows a half-written object (a hard link, with `O_EXCL` where the file system has no
hard links; fsspec's `pipe_file(mode="create")` checks then writes).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

from contract.files import TEMP_NAME, atomic_write, temp_beside
from runner.store.fsspec_backend import FsspecBackend

DRIVE_MOUNT = Path("/content/drive")

# link(2) errors meaning "this file system has no hard links" (FUSE mounts such as Drive).
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})

COPY_CHUNK = 1 << 20


class LocalBackend(FsspecBackend):
    """A directory through the OS: a laptop's ./runs or a Google Drive mount on Colab.

    A Drive mount is local to one machine and syncs in the background, so an exclusive create
    there excludes only processes on the same machine: it is reported as not exclusive.
    """

    def __init__(self, root: Path) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.directory = Path(root)
        super().__init__(LocalFileSystem(), self.directory.as_posix(),
                         exclusive=not (self.directory == DRIVE_MOUNT or DRIVE_MOUNT in self.directory.parents))

    def _local(self, path: str) -> Path:
        return self.directory / path if path else self.directory

    def put_file(self, local: Path, path: str) -> None:
        with Path(local).open("rb") as source:
            atomic_write(self._local(path), lambda out: shutil.copyfileobj(source, out, COPY_CHUNK))

    def put_bytes(self, path: str, data: bytes) -> None:
        atomic_write(self._local(path), data)

    def create(self, path: str, data: bytes) -> bool:
        """Write a temp file, then hard-link it to the name: link(2) fails if the name exists, and
        the name only ever points at complete content. Without hard links, O_EXCL on the name."""
        target = self._local(path)
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

    def get_file(self, path: str, local: Path) -> bool:
        """The source is opened first, so a missing key leaves nothing behind locally."""
        try:
            source = self.fs.open(self._path(path), "rb")
        except (FileNotFoundError, IsADirectoryError):
            return False
        with source:
            atomic_write(Path(local), lambda out: shutil.copyfileobj(source, out, COPY_CHUNK))
        return True

    def _entries(self, path: str) -> tuple[str, list[dict[str, Any]]]:
        """Temp files of interrupted writes are hidden; a symlink counts as what it points to."""
        base, entries = super()._entries(path)
        shown = []
        for entry in entries:
            if TEMP_NAME.match(entry["name"].rpartition("/")[2]):
                continue
            if entry.get("islink"):
                try:
                    entry = {**entry, "type": self.fs.info(entry["name"])["type"]}
                except FileNotFoundError:
                    continue
            shown.append(entry)
        return base, shown
