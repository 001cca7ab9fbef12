"""A local store never follows a symlink below its root (issue 10, item 7): whoever can write the
store (a shared Drive folder) must not be able to make a session write outside the job, nor make
`runner logs` print, or a restore read, a file of this machine. The root itself may be a symlink."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.store import Store, StoreError
from tests.file_tree import tree

FAST = {"retries": 2, "backoff_s": 0.01, "max_backoff_s": 0.02}
RUNNER = shutil.which("runner")
SECRET = b"a file outside the store\n"



@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    (folder / "trainer.log.000001").write_bytes(SECRET)
    return folder


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "store" / "demo"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_bytes(b"name: demo\n")
    return folder


def test_a_symlinked_folder_takes_no_writes_and_lists_as_nothing(tmp_path: Path, outside: Path, job_dir: Path) -> None:
    (job_dir / "logs").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    job = Store(str(tmp_path / "store"), **FAST).job("demo")

    with pytest.raises(StoreError, match="symlink"):
        job.put_bytes("logs/s1/trainer.log.000001", b"x")
    local = tmp_path / "part"
    local.write_bytes(b"x")
    with pytest.raises(StoreError, match="symlink"):
        job.put_file(local, "logs/s1/supervisor.log.000001")
    with pytest.raises(StoreError, match="symlink"):
        job.create_exclusive("logs/new.json", b"x")
    with pytest.raises(StoreError, match="symlink"):
        job.delete("logs/secret.txt")

    assert job.list_dirs("") == []
    assert job.list("logs") == [] and job.list_dirs("logs") == []
    assert job.get_bytes("logs/secret.txt") is None
    assert job.size("logs/secret.txt") is None and not job.exists("logs/secret.txt")
    assert job.get_file("logs/secret.txt", tmp_path / "copy") is False
    assert not (tmp_path / "copy").exists()
    assert tree(outside) == before


def test_a_symlinked_object_is_missing_and_is_not_replaced(tmp_path: Path, outside: Path, job_dir: Path) -> None:
    (job_dir / "checkpoints").mkdir()
    (job_dir / "checkpoints" / "step-000000001.pt").symlink_to(outside / "secret.txt")
    (job_dir / "checkpoints" / "step-000000001.json").write_bytes(b"{}")
    (job_dir / "state.json").symlink_to(outside / "secret.txt")
    before, store_before = tree(outside), tree(job_dir)
    job = Store(str(tmp_path / "store"), **FAST).job("demo")

    assert job.list("checkpoints") == ["step-000000001.json"]
    assert job.get_bytes("checkpoints/step-000000001.pt") is None
    assert job.size("checkpoints/step-000000001.pt") is None
    assert job.get_file("checkpoints/step-000000001.pt", tmp_path / "restored.pt") is False
    assert job.get_bytes("state.json") is None
    assert job.list("") == ["spec.yaml"]
    with pytest.raises(StoreError, match="symlink"):
        job.put_bytes("state.json", b"{}")
    assert tree(outside) == before and tree(job_dir) == store_before


def test_a_symlinked_job_folder_is_not_a_job(tmp_path: Path, outside: Path) -> None:
    (outside / "spec.yaml").write_bytes(b"name: demo\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "demo").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    store = Store(str(tmp_path / "store"), **FAST)
    assert store.list_jobs() == []
    assert store.job("demo").get_bytes("spec.yaml") is None
    with pytest.raises(StoreError, match="symlink"):
        store.job("demo").put_bytes("state.json", b"{}")
    assert tree(outside) == before


def test_a_fifo_reads_as_missing_instead_of_hanging(tmp_path: Path, job_dir: Path) -> None:
    os.mkfifo(job_dir / "state.json")
    job = Store(str(tmp_path / "store"), **FAST).job("demo")
    assert job.get_bytes("state.json") is None and job.size("state.json") is None
    assert job.list("") == ["spec.yaml"]


def test_the_store_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    """A Drive mount or a link to another disk as the root is the user's choice, and is followed."""
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    job = Store(str(tmp_path / "linked"), **FAST).job("demo")
    job.put_bytes("spec.yaml", b"name: demo\n")
    job.put_bytes("logs/s1/trainer.log.000001", b"line\n")
    assert (tmp_path / "real" / "demo" / "logs" / "s1" / "trainer.log.000001").read_bytes() == b"line\n"
    assert job.list_dirs("logs") == ["s1"]
    assert Store(str(tmp_path / "linked"), **FAST).list_jobs() == ["demo"]


@pytest.mark.e2e
@pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")
def test_runner_logs_prints_no_file_a_symlink_points_to(tmp_path: Path, outside: Path, job_dir: Path) -> None:
    (job_dir / "logs" / "s1").mkdir(parents=True)
    (job_dir / "logs" / "s1" / "trainer.log.000001").write_bytes(b"real line\n")
    (job_dir / "logs" / "s1" / "trainer.log.000002").symlink_to(outside / "secret.txt")
    (job_dir / "logs" / "s2").symlink_to(outside, target_is_directory=True)
    before = tree(tmp_path)
    result = subprocess.run([RUNNER, "logs", "demo", "--store", str(tmp_path / "store")],
                            capture_output=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"real line\n"
    assert b"Traceback" not in result.stderr
    assert tree(tmp_path) == before
