"""The store's failure policy without a store: which errors are retried, what the policy does with
them, that messages carry no credentials, and which URLs and job names are refused before any I/O."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
from collections.abc import Callable

import aiohttp
import pytest
import requests
from google.auth import exceptions as auth_exceptions

from runner import layout
from runner.store import RetryPolicy, Store, StoreError, StoreUnavailable, describe, is_transient, redact


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


def test_retry_policy_gives_up_as_unavailable_after_its_attempts() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    with pytest.raises(StoreUnavailable, match=r"op demo/k: store unavailable after 4 attempts: ConnectionRefusedError"):
        RetryPolicy(4, 0.0, 0.0).run("op", "demo/k", down)
    assert len(calls) == 4


@pytest.mark.parametrize("retries, backoff_s, max_backoff_s", [(0, 0.0, 0.0), (1, -1.0, 0.0), (1, 0.0, -1.0)])
def test_retry_policy_refuses_nonsense(retries: int, backoff_s: float, max_backoff_s: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries, backoff_s, max_backoff_s)


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


def test_raised_and_logged_failures_carry_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """Both the retry warnings and the final error go through the scrubber."""
    def leaky() -> None:
        raise ConnectionResetError(errno.ECONNRESET, "reset at https://u:SECRET@host/?token=SECRET2")

    with caplog.at_level("WARNING", logger="runner.store"):
        with pytest.raises(StoreUnavailable) as raised:
            RetryPolicy(2, 0.0, 0.0).run("put_bytes", "demo/state.json", leaky)
    assert "SECRET" not in str(raised.value)
    assert caplog.records, "the retry was not logged"
    assert all("SECRET" not in record.getMessage() for record in caplog.records)
    assert redact("Bearer abc.def") == "Bearer <redacted>"


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


@pytest.mark.parametrize("name", ["../x", "a/b", "A", "", "a..b", "-x"])
def test_unsafe_job_names(name: str) -> None:
    with pytest.raises(layout.UnsafeName):
        Store("memory://store-test-unsafe-names").job(name)
