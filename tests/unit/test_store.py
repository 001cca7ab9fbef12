"""The store against a real local directory and a real GCS API (fake-gcs-server), not mocks."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import requests
from google.auth import exceptions as auth_exceptions

from runner import layout
from runner.store import (
    FsspecBackend,
    JobStore,
    LocalBackend,
    RetryPolicy,
    Store,
    StoreError,
    StoreUnavailable,
    describe,
    is_transient,
)
from tests.gcs_emulator import GcsEmulator

FAST = {"retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}


def all_objects(url: str, request: pytest.FixtureRequest) -> list[str]:
    """Every object under the store's parent (the bucket, or the test's tmp dir)."""
    if url.startswith("gs://"):
        emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
        return emulator.list_objects(url.removeprefix("gs://").split("/")[0])
    parent = Path(url).parent
    return sorted(p.relative_to(parent).as_posix() for p in parent.rglob("*") if p.is_file())


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


def test_missing_keys_are_answers_not_errors(store_url: str, tmp_path: Path) -> None:
    job = Store(store_url, **FAST).job("demo")
    target = tmp_path / "down" / "x.pt"
    assert job.get_bytes("state.json") is None
    assert job.get_file("checkpoints/step-000000001.pt", target) is False
    assert not target.exists()
    assert job.size("state.json") is None
    assert not job.exists("state.json")
    assert job.list("checkpoints") == []
    assert job.list("") == []
    job.delete("state.json")


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


@pytest.mark.parametrize("name", ["../x", "a/b", "A", "", "a..b", "-x"])
def test_unsafe_job_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(layout.UnsafeName):
        Store(str(tmp_path)).job(name)


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
    for key in UNSAFE:
        for call in all_key_calls(job, key, tmp_path / "local"):
            with pytest.raises(layout.UnsafeName):
                call()

    after = all_objects(store_url, request)
    root = "store" if not store_url.startswith("gs://") else "runs"
    new = sorted(set(after) - set(before))
    assert set(before) <= set(after)
    assert all(name.startswith((f"{root}/demo/", "local/")) for name in new), new
    assert [n for n in new if n.startswith(f"{root}/")] == [
        f"{root}/demo/lease/000000001.json", f"{root}/demo/state.json", f"{root}/demo/weights/final.pt",
    ]
    assert store.job("other").get_bytes("checkpoints/step-000000001.pt") == b"theirs"


def test_outage_raises_unavailable_then_recovers(private_gcs_emulator: GcsEmulator) -> None:
    private_gcs_emulator.create_bucket("outage")
    job = Store("gs://outage/runs", **FAST).job("demo")
    job.put_bytes("state.json", b"1")

    private_gcs_emulator.stop()
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"put_bytes demo/state\.json: store unavailable after 3 attempts"):
        job.put_bytes("state.json", b"2")
    assert time.monotonic() - began < 5, "gcsfs's own retry loop (about 33 s per call) is not bypassed"
    with pytest.raises(StoreUnavailable):
        job.get_bytes("state.json")
    with pytest.raises(StoreUnavailable):
        job.create_exclusive("lease/000000002.json", b"me")

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


def test_memory_store_is_exclusive_within_the_process() -> None:
    store = Store("memory://store-test-exclusive", **FAST)
    job = store.job("demo")
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(job.create_exclusive("lease/000000001.json", b"x")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    job.put_bytes("spec.yaml", b"name: demo\n")
    assert store.list_jobs() == ["demo"]
    assert job.list("lease") == ["000000001.json"]


def test_check_then_write_where_the_backend_has_no_create_mode() -> None:
    """The fallback for an fsspec backend without `mode="create"` still refuses an existing name."""
    import fsspec

    backend = FsspecBackend(fsspec.filesystem("memory"), "/store-test-fallback", exclusive=False)
    assert backend.create("demo/lease/000000001.json", b"a") is True
    assert backend.create("demo/lease/000000001.json", b"b") is False
    assert backend.get_bytes("demo/lease/000000001.json") == b"a"


def test_which_stores_enforce_exclusive_create(gcs_emulator: GcsEmulator, tmp_path: Path) -> None:
    assert Store(str(tmp_path)).supports_exclusive_create
    assert Store(f"file://{tmp_path}").supports_exclusive_create
    assert Store("memory://x").supports_exclusive_create
    assert Store("gs://bucket/prefix").supports_exclusive_create
    drive = Store("/content/drive/MyDrive/runs")
    assert not drive.supports_exclusive_create
    assert not drive.job("demo").supports_exclusive_create
    assert drive.job("demo").url == "/content/drive/MyDrive/runs"


def test_store_urls_are_checked() -> None:
    with pytest.raises(StoreError, match="credentials"):
        Store("gs://user:secret@bucket/runs")
    with pytest.raises(StoreError, match="not supported"):
        Store("ftp://host/runs")
    with pytest.raises(StoreError, match="names no bucket"):
        Store("gs://")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_s3_without_s3fs_names_the_package() -> None:
    with pytest.raises(StoreError, match="s3fs"):
        Store("s3://bucket/runs")


def test_retry_policy_retries_transient_only() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "ok"

    assert RetryPolicy(3, 0.0, 0.0).run("op", "demo/k", flaky) == "ok"
    assert len(calls) == 3

    calls.clear()

    def forbidden() -> None:
        calls.append(1)
        raise PermissionError("Forbidden: bucket/demo/k")

    with pytest.raises(StoreError, match="op demo/k: PermissionError"):
        RetryPolicy(3, 0.0, 0.0).run("op", "demo/k", forbidden)
    assert len(calls) == 1


def http_error(code: int, message: str = "") -> Exception:
    from gcsfs.retry import HttpError

    return HttpError({"code": code, "message": message})


def checksum_error() -> Exception:
    from gcsfs.retry import ChecksumError

    return ChecksumError("md5 mismatch")


TRANSIENT_TABLE: list[tuple[str, Callable[[], BaseException], bool]] = [
    ("refused", lambda: ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
    ("reset", lambda: ConnectionResetError(errno.ECONNRESET, "reset"), True),
    ("broken pipe", lambda: BrokenPipeError(errno.EPIPE, "pipe"), True),
    ("timeout", lambda: TimeoutError("timed out"), True),
    ("asyncio timeout", lambda: asyncio.TimeoutError(), True),
    ("oserror unreachable", lambda: OSError(errno.EHOSTUNREACH, "no route"), True),
    ("drive mount gone", lambda: OSError(errno.ENOTCONN, "Transport endpoint is not connected"), True),
    ("aiohttp disconnected", lambda: aiohttp.ServerDisconnectedError(), True),
    ("aiohttp payload", lambda: aiohttp.ClientPayloadError("truncated"), True),
    ("aiohttp 503", lambda: aiohttp.ClientResponseError(None, (), status=503), True),  # type: ignore[arg-type]
    ("aiohttp 404", lambda: aiohttp.ClientResponseError(None, (), status=404), False),  # type: ignore[arg-type]
    ("requests connection", lambda: requests.ConnectionError("down"), True),
    ("requests read timeout", lambda: requests.ReadTimeout("slow"), True),
    ("requests http error", lambda: requests.HTTPError("400 bad"), False),
    ("auth transport", lambda: auth_exceptions.TransportError("metadata server"), True),
    ("auth refresh", lambda: auth_exceptions.RefreshError("invalid_grant"), False),
    ("gcs 500", lambda: http_error(500), True),
    ("gcs 503", lambda: http_error(503), True),
    ("gcs 429", lambda: http_error(429, "rate limit"), True),
    ("gcs 408", lambda: http_error(408), True),
    ("gcs 401 expired token", lambda: http_error(401, "Invalid Credentials"), True),
    ("gcs 401 anonymous", lambda: http_error(401, "Anonymous caller"), False),
    ("gcs 400", lambda: http_error(400, "bad"), False),
    ("gcs 404", lambda: http_error(404), False),
    ("gcs 412", lambda: http_error(412), False),
    ("gcs checksum", checksum_error, True),
    ("not found", lambda: FileNotFoundError("bucket/demo/x"), False),
    ("precondition (412 in gcsfs)", lambda: FileExistsError("bucket/demo/lease"), False),
    ("forbidden (403 in gcsfs)", lambda: OSError("Forbidden: bucket/demo/x"), False),
    ("permission", lambda: PermissionError(errno.EACCES, "denied"), False),
    ("disk full", lambda: OSError(errno.ENOSPC, "No space left on device"), False),
    ("bad request", lambda: ValueError("Bad Request: invalid"), False),
    ("bug", lambda: TypeError("unexpected"), False),
]


@pytest.mark.parametrize("make, expected", [(m, e) for _, m, e in TRANSIENT_TABLE],
                         ids=[name for name, _, _ in TRANSIENT_TABLE])
def test_is_transient(make: Callable[[], BaseException], expected: bool) -> None:
    assert is_transient(make()) is expected


def test_messages_carry_no_credentials() -> None:
    leaky = OSError(
        "Forbidden: https://storage.googleapis.com/upload?access_token=ya29.SECRET&x=1\n"
        "Authorization: Bearer ya29.SECRET2 https://user:SECRET3@host/p {\"private_key\": \"SECRET4\"}"
    )
    text = describe(leaky)
    assert "SECRET" not in text
    assert text.startswith("OSError: Forbidden: https://storage.googleapis.com/upload?access_token=<redacted>&x=1")
