"""Inputs kept in the store (issue 11): files a spec names on the submitting machine, copied into
`STORE/JOB/inputs/` so that a session on any other machine finds them there.

Today that is `model.pretrained` (a local file of ImageNet backbone weights). The first session
uploads it, with a small manifest (sha256, size) written after the object; a later session whose
machine lacks the file downloads it into its work dir and verifies it. Once the job has a
checkpoint the file is not needed at all: the checkpoint carries the weights, so a resumed
attempt is told no pretrained file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from contract.config import PRETRAINED_IMAGENET
from contract.files import sha256_of
from runner import layout
from runner.pull import fetch_verified
from runner.store import JobStore

log = logging.getLogger("runner")

PRETRAINED = "pretrained.pt"
INPUTS_DIR = "inputs"  # in the work dir too: where a downloaded input is kept


class InputMissing(RuntimeError):
    """A file the spec names is neither on this machine nor (verifying) in the store."""


def needs_pretrained(pretrained: str | None, resuming: bool) -> bool:
    """Whether an attempt needs the pretrained file: only a first start, never a resume. Pure."""
    return bool(pretrained) and not resuming


def keep_inputs(pretrained: str | None, job: JobStore) -> None:
    """Upload the spec's pretrained file to the store, once: a session holding the lease calls it
    at its start. A file that is not on this machine is left to `local_pretrained` to find."""
    if not pretrained or pretrained == PRETRAINED_IMAGENET or not Path(pretrained).expanduser().is_file():
        return  # `imagenet` is fetched by name, on any machine
    path = Path(pretrained).expanduser()
    manifest = {"sha256": sha256_of(path), "size": path.stat().st_size, "source": path.name}
    if _stored_manifest(job) == manifest:
        return
    job.put_file(path, layout.input_key(PRETRAINED))
    job.put_bytes(layout.input_key(PRETRAINED + ".json"), json.dumps(manifest).encode())
    log.info("kept %s in the store as %s for sessions on other machines", path, layout.input_key(PRETRAINED))


def local_pretrained(pretrained: str, job: JobStore, workdir: Path) -> str:
    """A path to the pretrained file on this machine: the spec's own when it is here, else the
    store's copy downloaded into WORK/inputs/ and verified against its manifest. `imagenet` is a
    name the trainer resolves itself, not a file."""
    if pretrained == PRETRAINED_IMAGENET or Path(pretrained).expanduser().is_file():
        return pretrained
    manifest = _stored_manifest(job)
    target = workdir / INPUTS_DIR / PRETRAINED
    if manifest is None:
        raise InputMissing(f"model.pretrained {pretrained} is not on this machine and not in the store "
                           f"({layout.input_key(PRETRAINED)}); copy it here or submit from the machine that has it")
    if not (target.is_file() and sha256_of(target) == manifest["sha256"]):  # an earlier attempt's download
        problem = fetch_verified(job, layout.input_key(PRETRAINED), target, manifest["size"], manifest["sha256"])
        if problem:
            raise InputMissing(f"{problem}; submit again from the machine that has {pretrained}")
        log.info("model.pretrained %s is not on this machine: using the store's copy", pretrained)
    return str(target)


def _stored_manifest(job: JobStore) -> dict | None:
    """The input's manifest, or None when it is missing or not one (bad store content is skipped)."""
    data = job.get_bytes(layout.input_key(PRETRAINED + ".json"))
    try:
        manifest = json.loads(data) if data else None
    except ValueError:
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str) \
            or not isinstance(manifest.get("size"), int):
        return None
    return manifest
