"""Getting verified files out of the store: the checkpoint a session resumes from, and the
weights or checkpoint `runner pull` hands a person (issue 12).

Everything downloaded is checked against its manifest (size and sha256) before it is used or
reported as pulled; a file that does not match is deleted here and never handed on. Bad
manifests (bad store content) are skipped, each with one log line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from contract.files import sha256_of
from contract.manifest import Manifest, WeightsManifest
from runner import layout
from runner.checkpoints import restore_candidates
from runner.store import JobStore

log = logging.getLogger("runner")

WEIGHTS = ("best-evalai", "best-val-loss", "final")  # what the trainer writes under weights/


class PullError(RuntimeError):
    """Nothing verifying to hand out; the message is one line naming the key and why."""


def remote_manifests(job: JobStore) -> list[Manifest]:
    """Every checkpoint manifest in the store that parses and whose checkpoint the trainer has
    not refused (a `.bad` marker); a bad manifest is reported and skipped alone."""
    names = job.list(layout.CHECKPOINTS)
    refused = {step for step in map(layout.parse_bad_marker_name, names) if step is not None}
    manifests = []
    for name in names:
        parsed = layout.parse_checkpoint_name(name)
        if parsed is None or parsed[1] != "json":
            continue
        try:
            manifest = Manifest.model_validate_json(job.get_bytes(f"{layout.CHECKPOINTS}/{name}") or b"")
        except ValidationError:
            log.warning("checkpoints/%s: manifest is unreadable; skipped", name)
            continue
        if manifest.step in refused:
            log.warning("checkpoints/%s: marked bad by an earlier session; skipped", name)
            continue
        manifests.append(manifest)
    return manifests


def fetch_verified(job: JobStore, key: str, local: Path, size: int, sha256: str) -> str | None:
    """Download `key` to `local` and check it; None when it verifies, else why not (the file is
    then removed)."""
    if not job.get_file(key, local):
        return f"{key} is missing"
    if local.stat().st_size != size or sha256_of(local) != sha256:
        local.unlink()
        return f"{key} does not match its manifest (truncated or corrupt)"
    return None


def newest_checkpoint(job: JobStore, directory: Path) -> tuple[Manifest, Path] | None:
    """The newest checkpoint that verifies, downloaded into `directory`, falling back to older
    ones; each one skipped is logged with its reason."""
    directory.mkdir(parents=True, exist_ok=True)
    for manifest in restore_candidates(remote_manifests(job)):
        local = directory / Path(layout.checkpoint_key(manifest.step)).name
        problem = fetch_verified(job, layout.checkpoint_key(manifest.step), local, manifest.size, manifest.sha256)
        if problem is None:
            return manifest, local
        log.warning("%s; trying an older checkpoint", problem)
    return None


def pull_weights(job: JobStore, name: str, out: Path) -> WeightsManifest:
    """`weights/NAME.pt` to `out`, verified against `weights/NAME.json`."""
    key = layout.weights_key(f"{name}.pt")
    data = job.get_bytes(layout.weights_key(f"{name}.json"))
    if data is None:
        exists = job.exists(key)
        raise PullError(f"{job.name}/{key}: " + ("has no manifest (written by an older version?); it cannot be "
                                                 "verified" if exists else "not in the store yet"))
    try:
        manifest = WeightsManifest.model_validate_json(data)
    except ValidationError:
        raise PullError(f"{job.name}/{layout.weights_key(name + '.json')}: the manifest is unreadable") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    problem = fetch_verified(job, key, out, manifest.size, manifest.sha256)
    if problem:
        raise PullError(f"{job.name}/{problem}")
    return manifest


def pull_checkpoint(job: JobStore, out: Path) -> Manifest:
    """The newest verifying full checkpoint, to `out`."""
    found = newest_checkpoint(job, out.parent)
    if found is None:
        raise PullError(f"{job.name}: no checkpoint in the store verifies against its manifest")
    manifest, local = found
    if local != out:
        local.replace(out)
    return manifest
