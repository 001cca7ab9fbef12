"""A store root on a local path: a laptop's ./runs, or a Google Drive mount on Colab.

Reads, listings, sizes and deletes go through fsspec's `LocalFileSystem`. Two things it lacks
are kept here: whole-object writes (`contract.files.atomic_write`: temp beside the target, fsync,
rename, fsync of the folder; fsspec's local `put_file` copies in place) and an exclusive create
that never shows a half-written object (a hard link, with `O_EXCL` where the file system has no
hard links; fsspec's `pipe_file(mode="create")` checks then writes).

Symlinks below the store root are never followed (the root itself may be one: a Drive mount):
anyone who can write the store could otherwise make a write land outside the job, or make
`runner logs` print any file of this machine. A path with a symlink in it reads as missing,
lists as nothing, and is refused (`StoreError`) for writes and deletes. Reads also open the
final name with O_NOFOLLOW and take regular files only, so a FIFO cannot hang a reader.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from contract.files import TEMP_NAME, atomic_write, fsync_dir, temp_beside
from runner.store.base import Progress, RootMode
from runner.store.fsspec_backend import FsspecBackend
from runner.store.retry import StoreError

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

    def _checked(self, path: str) -> Path | None:
        """The local path of `path`, or None when a component of it below the root is a symlink.

        Components are looked at from the root down with lstat; the first one that does not
        exist ends the walk (what a write creates below it is a real folder).
        """
        local = self.directory
        for part in path.split("/") if path else []:
            local = local / part
            try:
                mode = os.lstat(local).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return self._local(path)
            if stat.S_ISLNK(mode):
                return None
        return local

    def _writable(self, path: str) -> Path:
        local = self._checked(path)
        if local is None:
            raise StoreError(f"{path}: refused, a symlink in the store path would lead the write out of the job")
        return local

    def _open_regular(self, path: str) -> int | None:
        """A read-only descriptor of the regular file at `path`; None for anything else or missing."""
        local = self._checked(path)
        if local is None:
            return None
        try:
            descriptor = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:  # the final name became a symlink after the check
                return None
            raise
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            return None
        return descriptor

    def root_problem(self, mode: RootMode) -> str | None:
        under_drive = self.directory == DRIVE_MOUNT or DRIVE_MOUNT in self.directory.parents
        return local_root_problem(self.directory, mode,
                                  drive_unmounted=under_drive and not os.path.ismount(DRIVE_MOUNT),
                                  root_exists=self.directory.is_dir(), parent_exists=self.directory.parent.is_dir())

    def put_file(self, local: Path, path: str, progress: Progress | None = None) -> None:
        target = self._writable(path)
        with Path(local).open("rb") as source:
            atomic_write(target, lambda out: copy_reporting(source, out, progress))

    def put_bytes(self, path: str, data: bytes) -> None:
        atomic_write(self._writable(path), data)

    def create(self, path: str, data: bytes) -> bool:
        """Write a temp file, then hard-link it to the name: link(2) fails if the name exists, and
        the name only ever points at complete content. Without hard links, O_EXCL on the name."""
        target = self._writable(path)
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
        descriptor = self._open_regular(path)
        if descriptor is None:
            return None
        with os.fdopen(descriptor, "rb") as source:
            return source.read()

    def get_file(self, path: str, local: Path) -> bool:
        """The source is opened first, so a missing key leaves nothing behind locally."""
        descriptor = self._open_regular(path)
        if descriptor is None:
            return False
        with os.fdopen(descriptor, "rb") as source:
            atomic_write(Path(local), lambda out: shutil.copyfileobj(source, out, COPY_CHUNK))
        return True

    def size(self, path: str) -> int | None:
        local = self._checked(path)
        if local is None:
            return None
        try:
            status = os.lstat(local)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    def _entries(self, path: str) -> tuple[str, list[dict[str, Any]]]:
        """Temp files of interrupted writes are hidden, and so are symlinks; a path with a symlink
        in it lists as nothing."""
        if self._checked(path) is None:
            return self._path(path), []
        base, entries = super()._entries(path)
        shown = [entry for entry in entries
                 if not entry.get("islink") and not TEMP_NAME.match(entry["name"].rpartition("/")[2])]
        return base, shown

    def delete(self, path: str) -> None:
        self._writable(path)
        super().delete(path)

    def move(self, src: str, dst: str) -> bool:
        """`os.replace`: one rename, atomic within the store's file system, and durable once both
        folders are fsynced. Symlinks are refused on either side as for any write; a source that
        is not a regular file is not an object to move."""
        source, target = self._writable(src), self._writable(dst)
        try:
            if not stat.S_ISREG(os.lstat(source).st_mode):
                return False
        except (FileNotFoundError, NotADirectoryError):
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)
        if source.parent != target.parent:
            fsync_dir(source.parent)
        return True


def copy_reporting(source: BinaryIO, out: BinaryIO, progress: Progress | None) -> None:
    """Copy in chunks, telling `progress` the bytes copied so far (a Drive mount is slow too)."""
    copied = 0
    while chunk := source.read(COPY_CHUNK):
        out.write(chunk)
        copied += len(chunk)
        if progress:
            progress(copied)


def local_root_problem(root: Path, mode: RootMode, *, drive_unmounted: bool, root_exists: bool,
                       parent_exists: bool) -> str | None:
    """Why a local store root cannot be used, from facts about the disk; pure.

    A Drive path while Drive is not mounted would be created on the VM's own disk and lost with
    it; a root whose parent is missing is most likely a typo (or a mount that is not there), so
    it is only created when asked (`--create`). A root that is missing but whose parent exists
    is created by the first write of `submit`, and is "no store" for the commands that read.
    """
    if drive_unmounted:
        return (f"{root} is on Google Drive, which is not mounted on this machine: run "
                f"`from google.colab import drive; drive.mount('{DRIVE_MOUNT}')` first (anything written "
                "there now would stay on this VM's disk and be lost with it)")
    if root_exists or mode == "create":
        return None
    if mode == "read":
        return f"no store at {root}: nothing was submitted there yet (`runner submit` creates it)"
    if not parent_exists:
        return (f"{root}: its folder {root.parent} does not exist; check the path, or pass --create to "
                "`runner submit` to make it")
    return None
