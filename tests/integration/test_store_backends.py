"""The store against real backends: a local directory, fsspec's memory file system, and a real
GCS API (fake-gcs-server), not mocks. Every test taking `store_url` runs on each of them."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from runner import layout
from runner.store import JobStore, RetryPolicy, Store, StoreError, StoreUnavailable
from runner.store.local import LocalBackend
from tests.gcs_emulator import GcsEmulator

FAST = {"retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}


@pytest.fixture(params=["local", "memory", "gcs"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store root: a local directory, a new memory:// root, or a new bucket on the
    session's emulator. (Overrides conftest's local-and-GCS fixture for this module.)"""
    if request.param == "local":
        return str(tmp_path / "store")
    if request.param == "memory":
        return f"memory://store-{uuid.uuid4().hex[:16]}/store"
    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    emulator.create_bucket(bucket)
    return f"gs://{bucket}/runs"


def all_objects(url: str, request: pytest.FixtureRequest) -> list[str]:
    """Every object under the store's parent (the bucket, the memory root, or the test's tmp dir)."""
    if url.startswith("gs://"):
        emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
        return emulator.list_objects(url.removeprefix("gs://").split("/")[0])
    if url.startswith("memory://"):
        fs = fsspec.filesystem("memory")
        parent = "/" + url.removeprefix("memory://").split("/")[0]
        local = Path(request.getfixturevalue("tmp_path"))
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        return sorted(name.removeprefix(parent + "/") for name in fs.find(parent)) + files
    parent = Path(url).parent
    return sorted(p.relative_to(parent).as_posix() for p in parent.rglob("*") if p.is_file())


def test_upload_reports_its_progress(store_url: str, tmp_path: Path) -> None:
    """Bytes sent so far reach the caller while a file uploads, growing, ending at the size: what
    `uploading.sent` in the status shows. On GCS it is above one resumable chunk (16 MiB), so the
    report comes more than once."""
    from runner.store.gcs import UPLOAD_CHUNK

    source = tmp_path / "step.pt"
    source.write_bytes(os.urandom(UPLOAD_CHUNK + 3 * 2**20))
    size = source.stat().st_size
    reports: list[int] = []
    Store(store_url, **FAST).job("demo").put_file(source, "checkpoints/step-000000001.pt", reports.append)
    assert reports == sorted(reports) and reports[-1] == size, reports
    assert len([r for r in reports if 0 < r < size]) >= 1, reports


def test_bytes_round_trip(store_url: str) -> None:
    job = Store(store_url, **FAST).job("demo")
    job.put_bytes("state.json", b'{"phase": "running"}')
    assert job.get_bytes("state.json") == b'{"phase": "running"}'
    job.put_bytes("state.json", b'{"phase": "done"}')
    assert job.get_bytes("state.json") == b'{"phase": "done"}'
    assert job.size("state.json") == len(b'{"phase": "done"}')
    assert job.exists("state.json")


def test_multi_megabyte_file_round_trip(store_url: str, tmp_path: Path) -> None:
    """Above gcsfs's 5 MB threshold, so GCS takes the resumable (chunked) upload path."""
    source = tmp_path / "local" / "step.pt"
    source.parent.mkdir()
    payload = os.urandom(6 * 2**20 + 123)
    source.write_bytes(payload)
    job = Store(store_url, **FAST).job("demo")

    job.put_file(source, layout.checkpoint_key(7))
    assert job.size("checkpoints/step-000000007.pt") == len(payload)

    target = tmp_path / "restore" / "step.pt"
    assert job.get_file("checkpoints/step-000000007.pt", target)
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["step.pt"]


def test_get_file_replaces_an_existing_local_file_whole(store_url: str, tmp_path: Path) -> None:
    job = Store(store_url, **FAST).job("demo")
    job.put_bytes("weights/final.pt", b"new weights")
    target = tmp_path / "down" / "final.pt"
    target.parent.mkdir()
    target.write_bytes(b"old weights, longer than the new ones")
    assert job.get_file("weights/final.pt", target)
    assert target.read_bytes() == b"new weights"
    assert [p.name for p in target.parent.iterdir()] == ["final.pt"]


def test_missing_keys_are_answers_not_errors(store_url: str, tmp_path: Path) -> None:
    job = Store(store_url, **FAST).job("demo")
    target = tmp_path / "down" / "x.pt"
    assert job.get_bytes("state.json") is None
    assert job.get_file("checkpoints/step-000000001.pt", target) is False
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    assert job.size("state.json") is None
    assert not job.exists("state.json")
    assert job.list("checkpoints") == []
    assert job.list("") == []
    assert job.list_dirs("") == []
    job.delete("state.json")


def test_a_folder_is_not_an_object(store_url: str, tmp_path: Path) -> None:
    job = Store(store_url, **FAST).job("demo")
    job.put_bytes("checkpoints/step-000000001.pt", b"pt")
    target = tmp_path / "down" / "checkpoints"
    assert job.get_file("checkpoints", target) is False
    assert not target.exists()
    assert job.get_bytes("checkpoints") is None
    assert job.size("checkpoints") is None
    assert not job.exists("checkpoints")


def test_list_size_delete(store_url: str) -> None:
    job = Store(store_url, **FAST).job("demo")
    job.put_bytes("state.json", b"{}")
    job.put_bytes("checkpoints/step-000000002.pt", b"pt")
    job.put_bytes("checkpoints/step-000000002.json", b"{}")
    job.put_bytes("checkpoints/old/step-000000001.pt", b"nested")

    assert job.list("") == ["state.json"]
    assert job.list("checkpoints") == ["step-000000002.json", "step-000000002.pt"]
    assert job.list("checkpoints/step-000000002.pt") == []
    assert job.size("checkpoints") is None
    assert job.size("checkpoints/step-000000002.pt") == 2

    job.delete("checkpoints/step-000000002.pt")
    assert job.list("checkpoints") == ["step-000000002.json"]
    assert not job.exists("checkpoints/step-000000002.pt")
    assert job.get_bytes("checkpoints/old/step-000000001.pt") == b"nested"
    assert job.list_dirs("") == ["checkpoints"]
    assert job.list_dirs("checkpoints") == ["old"]
    assert job.list_dirs("checkpoints/old") == []
    assert job.list_dirs("nothing") == []


def test_move_puts_the_whole_object_under_the_new_name(store_url: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    """What the syncer does with a checkpoint: upload under the session's own name, then one move
    onto the final name, replacing what is there; nothing is left under the upload's name. Above
    gcsfs's 5 MB threshold, so on GCS the upload is resumable and the move a server-side rewrite."""
    source = tmp_path / "local" / "step.pt"
    source.parent.mkdir()
    payload = os.urandom(6 * 2**20 + 321)
    source.write_bytes(payload)
    store = Store(store_url, **FAST)
    job = store.job("demo")
    final = layout.checkpoint_key(7)
    temp = layout.upload_key(final, "session-a")
    job.put_bytes(final, b"an older object under the final name")
    before = all_objects(store_url, request)

    job.put_file(source, temp)
    assert job.list("checkpoints") == sorted([temp.rpartition("/")[2], "step-000000007.pt"])
    job.move(temp, final)

    assert job.size(final) == len(payload)
    target = tmp_path / "restore" / "step.pt"
    assert job.get_file(final, target) and target.read_bytes() == payload
    assert not job.exists(temp)
    assert job.list("checkpoints") == ["step-000000007.pt"]
    assert set(all_objects(store_url, request)) - set(before) <= {"local/step.pt", "restore/step.pt"}

    job.put_bytes("weights/.upload-session-a-final.pt", b"weights")  # into a folder that is not there yet
    job.move("weights/.upload-session-a-final.pt", "weights/final.pt")
    assert job.get_bytes("weights/final.pt") == b"weights"
    assert job.list("weights") == ["final.pt"]


def test_moving_nothing_is_a_store_error(store_url: str) -> None:
    job = Store(store_url, **FAST).job("demo")
    job.put_bytes("checkpoints/step-000000001.pt", b"theirs")
    with pytest.raises(StoreError, match=r"move demo/checkpoints/\.upload-s-step-000000001\.pt") as raised:
        job.move("checkpoints/.upload-s-step-000000001.pt", "checkpoints/step-000000001.pt")
    assert not isinstance(raised.value, StoreUnavailable)
    assert job.get_bytes("checkpoints/step-000000001.pt") == b"theirs"


def test_list_jobs_finds_submitted_jobs_only(store_url: str) -> None:
    store = Store(store_url, **FAST)
    assert store.list_jobs() == []
    store.job("alpha").put_bytes("spec.yaml", b"name: alpha\n")
    store.job("beta").put_bytes("state.json", b"{}")
    store.job("gamma.2").put_bytes("spec.yaml", b"name: gamma.2\n")
    assert store.list_jobs() == ["alpha", "gamma.2"]


def test_create_exclusive_first_wins(store_url: str) -> None:
    job = Store(store_url, **FAST).job("demo")
    assert job.create_exclusive("lease/000000001.json", b'{"owner": "a"}') is True
    assert job.create_exclusive("lease/000000001.json", b'{"owner": "b"}') is False
    assert job.get_bytes("lease/000000001.json") == b'{"owner": "a"}'
    assert job.list("lease") == ["000000001.json"]


def test_create_exclusive_race_between_two_clients(store_url: str) -> None:
    """Two sessions, each with its own Store (and its own HTTP session on GCS), race for the
    same lease numbers; the store itself must pick exactly one winner per number."""
    rounds = 12
    barrier = threading.Barrier(2)
    wins: dict[str, list[int]] = {"a": [], "b": []}

    def contend(owner: str) -> None:
        job = Store(store_url, **FAST).job("demo")
        for number in range(1, rounds + 1):
            barrier.wait(timeout=30)
            if job.create_exclusive(f"lease/{number:09d}.json", owner.encode()):
                wins[owner].append(number)

    threads = [threading.Thread(target=contend, args=(owner,)) for owner in wins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(wins["a"] + wins["b"]) == list(range(1, rounds + 1))
    job = Store(store_url).job("demo")
    for owner, numbers in wins.items():
        for number in numbers:
            assert job.get_bytes(f"lease/{number:09d}.json") == owner.encode()


UNSAFE = ["../x", "/abs", "a//b", "a/../b", "./a", "a\\b", ""]


def all_key_calls(job: JobStore, key: str, tmp_path: Path) -> list[Callable[[], object]]:
    local = tmp_path / "f"
    return [
        lambda: job.put_file(local, key),
        lambda: job.put_bytes(key, b"x"),
        lambda: job.create_exclusive(key, b"x"),
        lambda: job.get_bytes(key),
        lambda: job.get_file(key, local),
        lambda: job.size(key),
        lambda: job.delete(key),
        lambda: job.exists(key),
        lambda: job.move(key, "weights/final.pt"),
        lambda: job.move("weights/final.pt", key),
    ]


@pytest.mark.parametrize("key", UNSAFE)
def test_unsafe_keys_fail_before_any_request(key: str, private_gcs_emulator: GcsEmulator, tmp_path: Path) -> None:
    """The server is down: a request would end in StoreUnavailable, so UnsafeName proves that
    validation came first."""
    private_gcs_emulator.create_bucket("down")
    store = Store("gs://down/runs", retries=1)
    job = store.job("demo")
    private_gcs_emulator.stop()
    calls = all_key_calls(job, key, tmp_path)
    if key:
        calls += [lambda: job.list(key), lambda: job.list_dirs(key)]
    for call in calls:
        with pytest.raises(layout.UnsafeName):
            call()


def test_nothing_is_written_outside_the_job(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store = Store(store_url, **FAST)
    store.job("other").put_bytes("spec.yaml", b"name: other\n")
    store.job("other").put_bytes("checkpoints/step-000000001.pt", b"theirs")
    before = all_objects(store_url, request)

    source = tmp_path / "local" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(b"b" * 1000)
    job = store.job("demo")
    job.put_file(source, "weights/final.pt")
    job.put_bytes("state.json", b"{}")
    job.create_exclusive("lease/000000001.json", b"me")
    job.create_exclusive("lease/000000001.json", b"you")
    job.get_file("weights/final.pt", tmp_path / "local" / "final.pt")
    job.put_bytes("logs/s-1/trainer.log", b"log")
    job.delete("logs/s-1/trainer.log")
    job.delete("spec.yaml")
    job.put_bytes("weights/.upload-s-1-best.pt", b"best")
    job.move("weights/.upload-s-1-best.pt", "weights/best.pt")
    for key in UNSAFE:
        for call in all_key_calls(job, key, tmp_path / "local"):
            with pytest.raises(layout.UnsafeName):
                call()

    after = all_objects(store_url, request)
    root = "runs" if store_url.startswith("gs://") else "store"
    new = sorted(set(after) - set(before))
    assert set(before) <= set(after)
    assert all(name.startswith((f"{root}/demo/", "local/")) for name in new), new
    assert [n for n in new if n.startswith(f"{root}/")] == [
        f"{root}/demo/lease/000000001.json", f"{root}/demo/state.json", f"{root}/demo/weights/best.pt",
        f"{root}/demo/weights/final.pt",
    ]
    assert store.job("other").get_bytes("checkpoints/step-000000001.pt") == b"theirs"


class RecordingAsyncio:
    """`asyncio` as gcsfs's retry module sees it, with `sleep` recorded instead of slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, *args: Any, **kwargs: Any) -> None:
        self.sleeps.append(delay)


def test_outage_raises_unavailable_then_recovers(private_gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """During an outage each store call makes exactly our policy's attempts: gcsfs's own retry loop
    (six tries, sleeps up to 16 s, about 33 s a call) must not run beneath it, or the lease could
    not be renewed in time. Its backoff sleeps are recorded rather than timed."""
    from gcsfs import retry as gcsfs_retry

    assert gcsfs_retry.asyncio is asyncio, "gcsfs.retry no longer sleeps through asyncio: update this test"
    recorder = RecordingAsyncio()
    monkeypatch.setattr(gcsfs_retry, "asyncio", recorder)

    private_gcs_emulator.create_bucket("outage")
    job = Store("gs://outage/runs", **FAST).job("demo")
    job.put_bytes("state.json", b"1")

    private_gcs_emulator.stop()
    with pytest.raises(StoreUnavailable, match=r"put_bytes demo/state\.json: store unavailable after 3 attempts"):
        job.put_bytes("state.json", b"2")
    with pytest.raises(StoreUnavailable):
        job.get_bytes("state.json")
    with pytest.raises(StoreUnavailable):
        job.create_exclusive("lease/000000002.json", b"me")
    assert recorder.sleeps == [], "gcsfs's own retry loop ran beneath ours (single_try_gcs_class is not bypassing it)"

    private_gcs_emulator.start()
    assert job.get_bytes("state.json") == b"1", "what was stored before the outage is still there"
    job.put_bytes("state.json", b"2")
    assert job.get_bytes("state.json") == b"2"
    assert job.create_exclusive("lease/000000002.json", b"me") is True


def test_permanent_failure_is_store_error_naming_key(store_url: str, tmp_path: Path) -> None:
    job = Store(store_url, **FAST).job("demo")
    with pytest.raises(StoreError, match=r"put_file demo/weights/final\.pt: FileNotFoundError") as raised:
        job.put_file(tmp_path / "missing.pt", "weights/final.pt")
    assert not isinstance(raised.value, StoreUnavailable)
    assert not job.exists("weights/final.pt")
    assert job.list("weights") == []


def test_missing_bucket_is_permanent(gcs_emulator: GcsEmulator) -> None:
    job = Store("gs://no-such-bucket-here/runs", **FAST).job("demo")
    with pytest.raises(StoreError, match="put_bytes demo/state.json") as raised:
        job.put_bytes("state.json", b"{}")
    assert not isinstance(raised.value, StoreUnavailable)


def test_local_writes_leave_no_temp_files_and_listings_hide_stray_ones(tmp_path: Path) -> None:
    """A crash mid-write can leave a temp file beside its target; listings never show it."""
    job = Store(str(tmp_path / "store"), **FAST).job("demo")
    job.put_bytes("checkpoints/step-000000001.json", b"{}")
    job.create_exclusive("lease/000000001.json", b"me")
    folder = tmp_path / "store" / "demo"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["000000001.json", "step-000000001.json"]

    (folder / "checkpoints" / ".step-000000002.pt.0123456789ab.partial").write_bytes(b"half")
    (folder / "checkpoints" / ".tmpdir.0123456789ab.partial").mkdir()
    assert job.list("checkpoints") == ["step-000000001.json"]
    assert job.list_dirs("checkpoints") == []


def test_local_symlinks_are_not_followed(tmp_path: Path) -> None:
    """Nothing below the root is followed: a job folder or object linked in from elsewhere is not
    listed and reads as missing (tests/integration/test_store_symlinks.py has the rest)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "alpha").mkdir(parents=True)
    (elsewhere / "alpha" / "spec.yaml").write_bytes(b"name: alpha\n")
    (tmp_path / "store" / "beta").mkdir(parents=True)
    (tmp_path / "store" / "beta" / "spec.yaml").write_bytes(b"name: beta\n")
    (tmp_path / "store" / "alpha").symlink_to(elsewhere / "alpha", target_is_directory=True)
    (tmp_path / "store" / "beta" / "state.json").symlink_to(elsewhere / "alpha" / "spec.yaml")
    (tmp_path / "store" / "beta" / "dangling.json").symlink_to(elsewhere / "missing.json")

    store = Store(str(tmp_path / "store"), **FAST)
    assert store.list_jobs() == ["beta"]
    assert store.job("beta").list("") == ["spec.yaml"]
    assert store.job("beta").get_bytes("state.json") is None
    assert store.job("alpha").get_bytes("spec.yaml") is None


def test_create_exclusive_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FUSE mounts such as Drive refuse link(2); O_EXCL still decides who created the name."""
    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    job = Store(str(tmp_path / "store")).job("demo")
    assert job.create_exclusive("lease/000000001.json", b"a") is True
    assert job.create_exclusive("lease/000000001.json", b"b") is False
    assert job.get_bytes("lease/000000001.json") == b"a"
    assert job.list("lease") == ["000000001.json"]


class LostReplyBackend(LocalBackend):
    """The create lands, then the connection drops before the answer arrives."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.dropped = False

    def create(self, path: str, data: bytes) -> bool:
        created = super().create(path, data)
        if not self.dropped:
            self.dropped = True
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return created


def test_create_exclusive_recognises_its_own_earlier_attempt(tmp_path: Path) -> None:
    backend = LostReplyBackend(tmp_path)
    policy = RetryPolicy(3, 0.0, 0.0)
    assert JobStore(backend, policy, "demo", str(tmp_path)).create_exclusive("lease/000000001.json", b"mine") is True
    rival = LostReplyBackend(tmp_path)
    assert JobStore(rival, policy, "demo", str(tmp_path)).create_exclusive("lease/000000001.json", b"theirs") is False


class LostMoveReplyBackend(LocalBackend):
    """The move lands, then the connection drops before the answer arrives."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.dropped = False

    def move(self, src: str, dst: str) -> bool:
        moved = super().move(src, dst)
        if not self.dropped:
            self.dropped = True
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return moved


def test_a_retried_move_recognises_its_own_earlier_attempt(tmp_path: Path) -> None:
    backend = LostMoveReplyBackend(tmp_path)
    job = JobStore(backend, RetryPolicy(3, 0.0, 0.0), "demo", str(tmp_path))
    job.put_bytes("checkpoints/.upload-s-step-000000001.pt", b"mine")
    job.move("checkpoints/.upload-s-step-000000001.pt", "checkpoints/step-000000001.pt")
    assert backend.dropped
    assert job.get_bytes("checkpoints/step-000000001.pt") == b"mine"
    assert job.list("checkpoints") == ["step-000000001.pt"]


def test_local_move_refuses_symlinks_on_either_side(tmp_path: Path) -> None:
    """A move is a write at both names: neither may lead out of the job through a symlink."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "outside.pt").write_bytes(b"outside")
    job = Store(str(tmp_path / "store"), **FAST).job("demo")
    job.put_bytes("checkpoints/.upload-s-step-000000001.pt", b"mine")
    folder = tmp_path / "store" / "demo"
    (folder / "weights").symlink_to(elsewhere, target_is_directory=True)
    (folder / "checkpoints" / ".upload-s-step-000000002.pt").symlink_to(elsewhere / "outside.pt")

    with pytest.raises(StoreError, match="symlink"):
        job.move("checkpoints/.upload-s-step-000000001.pt", "weights/final.pt")
    with pytest.raises(StoreError, match="symlink"):
        job.move("checkpoints/.upload-s-step-000000002.pt", "checkpoints/step-000000002.pt")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["outside.pt"]
    assert (elsewhere / "outside.pt").read_bytes() == b"outside"
    assert job.get_bytes("checkpoints/.upload-s-step-000000001.pt") == b"mine"
    assert not job.exists("checkpoints/step-000000002.pt")


def test_which_stores_enforce_exclusive_create(gcs_emulator: GcsEmulator, tmp_path: Path) -> None:
    assert Store(str(tmp_path)).supports_exclusive_create
    assert Store(f"file://{tmp_path}").supports_exclusive_create
    assert Store("memory://x").supports_exclusive_create
    assert Store("gs://bucket/prefix").supports_exclusive_create
    drive = Store("/content/drive/MyDrive/runs")
    assert not drive.supports_exclusive_create
    assert not drive.job("demo").supports_exclusive_create
    assert drive.job("demo").url == "/content/drive/MyDrive/runs"


def test_opening_a_local_or_memory_store_loads_no_cloud_client() -> None:
    """gcsfs, s3fs and aiohttp are imported only when such a store is opened (checked in a fresh
    interpreter, since this one has them loaded)."""
    import subprocess
    import sys

    code = (
        "import sys, tempfile\n"
        "from runner.store import Store\n"
        "Store(tempfile.mkdtemp()).job('demo').put_bytes('state.json', b'{}')\n"
        "Store('memory://x').job('demo').put_bytes('state.json', b'{}')\n"
        "loaded = sorted(m for m in ('torch', 'trainer', 'gcsfs', 's3fs', 'aiohttp') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
