"""Inputs kept in the store (issue 11): `model.pretrained` goes up with the first session and is
found by sessions on machines that lack it; a bad copy in the store is refused, never used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.inputs import PRETRAINED, InputMissing, keep_inputs, local_pretrained, needs_pretrained
from runner.store import Store


def test_the_pretrained_file_reaches_a_machine_without_it(tmp_path: Path) -> None:
    job = Store(str(tmp_path / "store")).job("j")
    source = tmp_path / "laptop" / "backbone.pth"
    source.parent.mkdir()
    source.write_bytes(b"weights " * 1000)
    keep_inputs(str(source), job)
    assert job.get_bytes(f"inputs/{PRETRAINED}") == source.read_bytes()
    assert json.loads(job.get_bytes(f"inputs/{PRETRAINED}.json") or b"")["size"] == 8000

    here = local_pretrained(str(source), job, tmp_path / "w1")
    assert here == str(source)  # on the machine that has it, the spec's own path
    source.unlink()  # another machine: the spec's path is not there
    fetched = local_pretrained(str(source), job, tmp_path / "w2")
    assert Path(fetched).read_bytes() == b"weights " * 1000 and Path(fetched).is_relative_to(tmp_path / "w2")

    keep_inputs(str(source), job)  # a session on that machine uploads nothing and breaks nothing
    assert job.exists(f"inputs/{PRETRAINED}")


def test_a_bad_copy_in_the_store_is_refused(tmp_path: Path) -> None:
    job = Store(str(tmp_path / "store")).job("j")
    source = tmp_path / "backbone.pth"
    source.write_bytes(b"good")
    keep_inputs(str(source), job)
    source.unlink()
    job.put_bytes(f"inputs/{PRETRAINED}", b"evil")
    with pytest.raises(InputMissing, match="does not match its manifest"):
        local_pretrained(str(source), job, tmp_path / "w")
    assert not (tmp_path / "w" / "inputs" / PRETRAINED).exists()
    job.put_bytes(f"inputs/{PRETRAINED}.json", b"[not a manifest")
    with pytest.raises(InputMissing, match="not on this machine and not in the store"):
        local_pretrained(str(source), job, tmp_path / "w")


def test_imagenet_is_a_name_not_a_file(tmp_path: Path) -> None:
    job = Store(str(tmp_path / "store")).job("j")
    keep_inputs("imagenet", job)
    assert not job.exists(f"inputs/{PRETRAINED}")
    assert local_pretrained("imagenet", job, tmp_path / "w") == "imagenet"


def test_a_resumed_attempt_needs_no_pretrained_file() -> None:
    assert needs_pretrained("/content/backbone.pth", resuming=False)
    assert not needs_pretrained("/content/backbone.pth", resuming=True)
    assert not needs_pretrained(None, resuming=False)
