"""One failure policy for every store request, and the scrubbing that keeps credentials out of logs.

Transient errors (network, 5xx, 429, timeouts, an expired OAuth token) are retried with
exponential backoff and end in `StoreUnavailable`; anything else fails at once as `StoreError`.
Client libraries are only consulted when already loaded, so a local store never imports
aiohttp or gcsfs to classify an error.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import re
import sys
import time
from typing import Callable, TypeVar

log = logging.getLogger("runner.store")

T = TypeVar("T")

# HTTP statuses worth another try: the server or the path to it is overloaded or briefly down.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# OS errors that come from the network (or a FUSE mount such as Drive losing its connection),
# not from the request itself. EIO is here because Drive's mount reports dropped syncs that way.
TRANSIENT_ERRNO = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.ENOTCONN,
    errno.EAGAIN, errno.EIO,
})

# Errors that say the answer is final, whatever else they also are.
PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)

SECRETS = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(//)[^/\s:@]+:[^/\s@]+@"), r"\1<redacted>@"),
    (re.compile(
        r"(?i)((?:access_token|refresh_token|id_token|client_secret|private_key|password|"
        r"x-goog-signature|x-amz-signature|x-amz-security-token|signature|token)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s&,;'\"]+"
    ), r"\1<redacted>"),
)


class StoreError(RuntimeError):
    """A store operation that failed for good; the message names the key and the cause."""


class StoreMissing(StoreError):
    """The store's root is not there (a missing bucket, an unmounted Drive); the message says the fix."""


class StoreUnavailable(StoreError):
    """Transient failures outlasted every retry: the store is down or unreachable for now."""


def is_transient(error: BaseException) -> bool:
    """Whether trying the same request again may succeed.

    Client libraries are only consulted when already loaded: an error cannot come from a library
    that was never imported, and a local store should not pay for importing aiohttp or gcsfs.
    """
    if isinstance(error, PERMANENT):
        return False
    status = http_status(error)
    if status is not None:
        # An expired OAuth token reads as 401 "Invalid Credentials"; the next try refreshes it.
        return status in TRANSIENT_STATUS or (status == 401 and "Invalid Credentials" in str(error))
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(error, _loaded_types(
        ("aiohttp", "ClientError"),
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "Timeout"),
        ("requests.exceptions", "ChunkedEncodingError"),
        ("google.auth.exceptions", "TransportError"),
        ("gcsfs.retry", "ChecksumError"),
    )):
        return True
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNO


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries: aiohttp's errors have `.status`, gcsfs's HttpError `.code`."""
    for attribute in ("status", "code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _loaded_types(*names: tuple[str, str]) -> tuple[type, ...]:
    found = []
    for module_name, attribute in names:
        module = sys.modules.get(module_name)
        kind = getattr(module, attribute, None)
        if isinstance(kind, type):
            found.append(kind)
    return tuple(found)


def redact(text: str) -> str:
    """Strip anything shaped like a credential from text that is about to be raised or logged."""
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def describe(error: BaseException) -> str:
    """One line: the error's type and its text, scrubbed and cut short."""
    text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return redact(f"{type(error).__name__}: {text}" if text else type(error).__name__)[:400]


class RetryPolicy:
    """Exponential backoff with jitter, so that sessions that lost the store together do not
    all come back in the same instant."""

    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float) -> None:
        if retries < 1:
            raise ValueError(f"retries must be at least 1 (the first attempt counts), not {retries}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must not be negative")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def run(self, operation: str, where: str, call: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return call()
            except Exception as error:
                if not is_transient(error):
                    raise StoreError(f"{operation} {where}: {describe(error)}{_hint(error)}") from error
                if attempt >= self.retries:
                    raise StoreUnavailable(
                        f"{operation} {where}: store unavailable after {self.retries} attempts: {describe(error)}"
                    ) from error
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning(
                    "store %s %s failed (%s); attempt %d of %d in %.1f s",
                    operation, where, describe(error), attempt, self.retries, delay,
                )
                time.sleep(delay)


def _hint(error: BaseException) -> str:
    if http_status(error) in (401, 403) or str(error).startswith("Forbidden"):
        return " (check the store's credentials: Colab auth, ADC or GOOGLE_APPLICATION_CREDENTIALS)"
    return ""
