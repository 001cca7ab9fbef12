"""The data cache in the store (DESIGN §5): a session restores a dataset from STORE/_data/NAME/
instead of downloading, rendering and deriving it again, and the first session to prepare it
adds it there for the others.

What to cache is the trainer's call (`python -m trainer prepare --plan`: dataset name, files,
which this machine lacks); this module moves bytes. Under STORE/_data/NAME/:

    train.zip.manifest.json                    {"name", "size", "sha256", "written_at", "job", "session"}
    train.zip.<first 16 hex of its sha256>     the object, under a key of its content
    train/keypoints-kp57-derive-2-960x540.npz.manifest.json, .npz.<sha16>
    train.tar.manifest.json, train.tar.<sha16> a folder of frames (synthetic data) as one tar

Writes: only a session holding its job's lease writes here (checked before each object and
manifest); objects first, a manifest after its object is complete and its size checked. Two jobs
may add the same file at once: objects are content-addressed, so an object's key only ever holds
the bytes its name promises, and the manifest is created only if absent, so the first complete
upload wins and the other (if its bytes differ) leaves an object nothing refers to. Nothing
here is ever deleted (`DataStore` refuses it): jobs sharing the cache cannot agree on a delete.

Reads never break a session: a manifest that is missing, unreadable or names another object,
an object that is missing or does not match its manifest, or an archive with anything but plain
files, is one log line and that file is prepared the usual way. Where the objects go locally
comes from the trainer's plan, never from the store, and every key is checked by `layout`.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.files import sha256_of, temp_beside
from runner import layout
from runner.lease import LeaseLost
from runner.status import DataRecord, now_iso
from runner.store import DataStore, StoreError

log = logging.getLogger("runner")

MANIFEST_SUFFIX = ".manifest.json"
DIGEST_CHARS = 16  # of the sha256 in an object's key: 64 bits tell apart any two versions of a file


class PlanFile(BaseModel):
    """One file of the trainer's plan: its name in the cache, its place here, whether it is
    missing here, and whether it is a folder (kept as one archive of its plain files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: Path
    needed: bool
    folder: bool = False

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if name.endswith(MANIFEST_SUFFIX):
            raise ValueError(f"{name!r} ends like a manifest")
        return layout.check_relative(name)


class Plan(BaseModel):
    """What `python -m trainer prepare --plan` prints: the dataset's cache name and its files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cache: str
    files: list[PlanFile]

    @field_validator("cache")
    @classmethod
    def _safe_cache(cls, cache: str) -> str:
        return layout.check_data_name(cache)


class ObjectManifest(BaseModel):
    """Says an object is complete: written after it, and what a restore verifies it against."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    written_at: str
    job: str
    session: str


def parse_plan(stdout: str) -> Plan:
    """The plan in the trainer's output (its last line); ValueError when there is none."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("the trainer printed no plan")
    try:
        return Plan.model_validate(json.loads(lines[-1]))
    except (json.JSONDecodeError, ValidationError, layout.UnsafeName) as error:
        raise ValueError(f"the trainer's plan is not one: {error}") from None


def manifest_key(name: str) -> str:
    return layout.check_relative(f"{name}{MANIFEST_SUFFIX}")


def object_key(name: str, sha256: str) -> str:
    return layout.check_relative(f"{name}.{sha256[:DIGEST_CHARS]}")


# What the store says of a file: its manifest, why it cannot be used, or None when it is absent.
Found = ObjectManifest | str | None


def read_manifest(name: str, data: bytes | None) -> Found:
    if data is None:
        return None
    try:
        manifest = ObjectManifest.model_validate_json(data)
    except ValidationError:
        return "its manifest is unreadable"
    if manifest.name != name:
        return f"its manifest names another object ({manifest.name[:80]!r})"
    return manifest


def mismatch(manifest: ObjectManifest, size: int, sha256: str) -> str | None:
    """Why a downloaded object is not the one its manifest describes; None when it is."""
    if size != manifest.size:
        return f"its object has {size} bytes, its manifest says {manifest.size}"
    if sha256 != manifest.sha256:
        return "its object does not match its manifest's sha256"
    return None


@dataclass
class Outcome:
    """What became of one plan file: `problem` says why a needed file did not come from the cache."""

    file: PlanFile
    found: Found
    restored: bool = False
    problem: str | None = None


def upload_action(exists_here: bool, found: Found, restore_failed: bool) -> Literal["add", "repair"] | None:
    """What this session adds for a file once its data is prepared.

    `add`: the cache lacks it (no manifest). `repair`: its manifest is sound but the object did
    not restore; putting this machine's copy back under the object's key mends the cache when the
    bytes are the manifest's (the caller checks). An unusable manifest is never replaced: a
    manifest is created once, and nothing here is overwritten or deleted.
    """
    if not exists_here:
        return None
    if found is None:
        return "add"
    if isinstance(found, ObjectManifest) and restore_failed:
        return "repair"
    return None


def data_record(plan: Plan | None, outcomes: list[Outcome], uploaded: list[str], keypoints_derived: int) -> DataRecord:
    """The session's `data` status: what came from the cache and what was prepared here."""
    return DataRecord(
        cache=plan.cache if plan else None,
        restored=[o.file.name for o in outcomes if o.restored],
        prepared=[o.file.name for o in outcomes if o.file.needed and not o.restored],
        uploaded=uploaded,
        keypoints_derived=keypoints_derived,
    )


def describe(record: DataRecord) -> str:
    """One log line saying where the data came from (what a reader of the log looks for)."""
    if record.cache is None:
        return f"prepared without the store's data cache; keypoints derived for {record.keypoints_derived} frame(s)"
    where = f"{layout.data_key(record.cache)}/"
    parts = [f"{len(record.restored)} file(s) restored from the store's data cache {where}"
             + (f" ({', '.join(record.restored)})" if record.restored else "")]
    parts.append(f"{len(record.prepared)} prepared here"
                 + (f" ({', '.join(record.prepared)})" if record.prepared else ""))
    if record.uploaded:
        parts.append(f"{len(record.uploaded)} added to the cache ({', '.join(record.uploaded)})")
    parts.append(f"keypoints derived for {record.keypoints_derived} frame(s)")
    return "; ".join(parts)


class UnsafeArchive(ValueError):
    """An archive holding anything but plain files at its top level."""


def pack(folder: Path, target: Path) -> None:
    """The folder's plain files (dot-files, i.e. caches and temp files, left out) as one tar whose
    bytes follow from names and contents alone (sorted; no times, owners or modes), so two sessions
    packing the same frames make the same object."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as source:
                archive.addfile(info, source)


def unpack(archive_path: Path, folder: Path) -> None:
    """A `pack`ed archive's files into `folder`, each moved in whole once all are out, so a killed
    restore leaves only complete files (which the trainer counts) and a bad archive leaves none."""
    staging = temp_beside(folder)
    try:
        with tarfile.open(archive_path) as archive:
            members = archive.getmembers()
            for member in members:
                if not member.isreg() or "/" in member.name or member.name.startswith("."):
                    raise UnsafeArchive(f"its archive holds {member.name[:80]!r}, not a plain file name")
            archive.extractall(staging, members=members, filter="data")
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            path.replace(folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_plan(command: list[str]) -> Plan | None:
    """Run the trainer's `prepare --plan`; None, with one log line, when it gives no usable plan
    (the data is then prepared as without a cache)."""
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        if result.returncode != 0:
            stderr = result.stderr.strip()
            raise ValueError(stderr.splitlines()[-1] if stderr else f"exit {result.returncode}")
        return parse_plan(result.stdout)
    except ValueError as error:
        log.warning("data cache not used: %s", error)
        return None


class DataCache:
    """Restores a plan's files from STORE/_data/NAME/ and adds those it lacks."""

    def __init__(self, store: DataStore, job: str, session: str) -> None:
        self.store = store
        self.job = job
        self.session = session

    def _where(self, name: str) -> str:
        return layout.data_key(self.store.cache, name)

    def _lookup(self, name: str) -> Found:
        try:
            return read_manifest(name, self.store.get_bytes(manifest_key(name)))
        except StoreError as error:
            return f"its manifest could not be read ({error})"

    def restore(self, plan: Plan) -> list[Outcome]:
        """Each needed file the cache has and that verifies, put in place; what became of each."""
        outcomes = []
        for file in plan.files:
            outcome = Outcome(file, self._lookup(file.name))
            if isinstance(outcome.found, ObjectManifest) and file.needed:
                outcome.problem = self._fetch(file, outcome.found)
                outcome.restored = outcome.problem is None
            elif isinstance(outcome.found, str):
                outcome.problem = outcome.found
            if outcome.problem:
                log.warning("data cache %s: %s; %s", self._where(file.name), outcome.problem,
                            "preparing it the usual way" if file.needed else "not used")
            outcomes.append(outcome)
        return outcomes

    def _fetch(self, file: PlanFile, manifest: ObjectManifest) -> str | None:
        """Put the object in place once it verifies; why not otherwise (nothing half-placed is left)."""
        download = temp_beside(file.path.with_name(f"{file.path.name}.download"))
        try:
            file.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.store.get_file(object_key(file.name, manifest.sha256), download):
                return "its object is missing"
            if problem := mismatch(manifest, download.stat().st_size, sha256_of(download)):
                return problem
            if file.folder:
                unpack(download, file.path)
            else:
                download.replace(file.path)
            return None
        except (StoreError, OSError, tarfile.TarError, UnsafeArchive) as error:
            return str(error) if isinstance(error, UnsafeArchive) else f"it could not be restored ({error})"
        finally:
            download.unlink(missing_ok=True)

    def upload(self, outcomes: list[Outcome], check_lease: Callable[[], None]) -> list[str]:
        """Add what the cache lacks (and mend objects that did not restore) from this machine's
        prepared data; the names added. A failure is one log line: a later session tries again."""
        added = []
        for outcome in outcomes:
            file = outcome.file
            here = file.path.is_dir() if file.folder else file.path.is_file()
            action = upload_action(here, outcome.found, outcome.problem is not None)
            if action is None:
                continue
            try:
                if self._add(file, outcome.found, check_lease):
                    added.append(file.name)
            except LeaseLost as lost:
                log.warning("data cache not added to: %s", lost)
                break
            except (StoreError, OSError, tarfile.TarError) as error:
                log.warning("data cache %s: not added (%s); a later session adds it", self._where(file.name), error)
        return added

    @contextmanager
    def _local_object(self, file: PlanFile) -> Iterator[Path]:
        """The bytes to upload: the file itself, or a folder packed into a temp tar beside it."""
        if not file.folder:
            yield file.path
            return
        packed = temp_beside(file.path.with_name(f"{file.path.name}.tar"))
        try:
            pack(file.path, packed)
            yield packed
        finally:
            packed.unlink(missing_ok=True)

    def _add(self, file: PlanFile, found: Found, check_lease: Callable[[], None]) -> bool:
        with self._local_object(file) as local:
            size, digest = local.stat().st_size, sha256_of(local)
            repair = isinstance(found, ObjectManifest)
            if repair and digest != found.sha256:
                log.info("data cache %s: this machine's copy differs from the manifest's; left as it is",
                         self._where(file.name))
                return False
            key = object_key(file.name, digest)
            if repair or self.store.size(key) != size:  # content-addressed: an equal object need not go again
                check_lease()
                self.store.put_file(local, key)
            if self.store.size(key) != size:
                raise StoreError(f"{self._where(key)} does not have {size} bytes after its upload")
            if repair:
                log.info("data cache %s: object put back under %s", self._where(file.name), key)
                return True
            manifest = ObjectManifest(name=file.name, size=size, sha256=digest, written_at=now_iso(),
                                      job=self.job, session=self.session)
            check_lease()
            if self.store.create_exclusive(manifest_key(file.name), manifest.model_dump_json().encode()):
                return True
            winner = read_manifest(file.name, self.store.get_bytes(manifest_key(file.name)))
            if not (isinstance(winner, ObjectManifest) and winner.sha256 == digest):
                log.info("data cache %s: another session added it first; %s is left unreferenced",
                         self._where(file.name), self._where(key))
            return False
