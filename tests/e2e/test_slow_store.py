"""Fencing on a slow link (DESIGN §6, issue 10 item 1): the real CLI, supervisor and trainer,
gcsfs on the GCS emulator behind a throttling proxy, a checkpoint of ~19 MB at ~1 MB/s.

One checkpoint upload then outlasts several sync intervals. While it is in flight the lease
must stay fresh on its own timer (status says `running`, a second attach is refused); a take-over
must fence the first session, which then writes nothing that could win over the new owner's; and
the store must end with only verifying manifests and both sessions in its history.

The runner's subprocesses reach the store through the proxy; the test's own reads go to the
emulator directly, so they are fast and do not share the throttled link.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from contract.files import sha256_of
from contract.manifest import Manifest
from runner.store import Store
from tests.conftest import started_emulator
from tests.e2e.test_runner import data_root, write_spec  # noqa: F401  (data_root: a fixture)
from tests.throttle_proxy import ThrottleProxy

pytestmark = pytest.mark.e2e

JOB = "slow"
BUCKET = "slow-link"
STORE = f"gs://{BUCKET}/runs"
EVERY_S = 1.0  # sync.every_seconds: the least a spec allows, so the lease lives 3 s
RATE = 1_000_000  # bytes/s up: an ~19 MB checkpoint takes ~19 s, many sync intervals
FAST = 100_000_000  # once the first session is gone, so the second finishes in good time
RUNNER = shutil.which("runner")


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll until `condition()` is truthy (and return it); fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def same_upload(one: dict | None, other: dict | None) -> bool:
    """The same upload in two status reads: its key and start, whatever its bytes sent meanwhile."""
    return bool(one and other) and (one["key"], one["since"]) == (other["key"], other["since"])


class Emulated:
    """Direct reads of the job in the emulator: contents through `Store`, and object metadata
    (size, generation, update time on the server's clock) through the JSON API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.job = Store(STORE).job(JOB)
        self.prefix = f"runs/{JOB}/"

    def objects(self, under: str = "") -> dict[str, dict]:
        """Key (relative to the job) → {size, generation, updated} for every object under `under`."""
        found: dict[str, dict] = {}
        token = ""
        while True:
            query = {"prefix": self.prefix + under, **({"pageToken": token} if token else {})}
            with urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}/o?{urllib.parse.urlencode(query)}",
                                        timeout=10) as response:
                page = json.loads(response.read())
            for item in page.get("items", []):
                found[item["name"][len(self.prefix):]] = {
                    "size": int(item["size"]), "generation": int(item["generation"]), "updated": item["updated"]}
            token = page.get("nextPageToken", "")
            if not token:
                return found

    def json(self, key: str) -> dict | None:
        data = self.job.get_bytes(key)
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None

    def state(self) -> dict:
        return self.json("state.json") or {}

    def manifests(self) -> dict[str, Manifest]:
        return {key: Manifest.model_validate_json(self.job.get_bytes(key) or b"")
                for key in self.objects("checkpoints/") if key.endswith(".json")}

    def leases(self) -> dict[int, dict]:
        """Lease number → {owner, updated} for the lease objects there now."""
        leases = {}
        for key, meta in self.objects("lease/").items():
            record = self.json(key)
            if record is not None:
                leases[int(Path(key).stem)] = {"owner": record.get("owner"), "updated": meta["updated"]}
        return leases


def server_time(value: str) -> str:
    """The emulator's RFC 3339 times compare as strings once their fractions have one width."""
    head, _, fraction = value.rstrip("Z").partition(".")
    return f"{head}.{fraction:0<9}"


def cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RUNNER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def background(log: Path, *args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """A supervisor session with its output in a file (a pipe nobody reads would block it)."""
    with log.open("w") as sink:
        return subprocess.Popen([RUNNER, *args], env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=30)


@pytest.mark.skipif(RUNNER is None, reason="the `runner` console script is not on PATH (activate the venv)")
def test_take_over_during_a_slow_upload_fences_the_first_session(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    emulator = started_emulator()  # skips, saying why, where the emulator cannot run
    proxy = ThrottleProxy(emulator.port, RATE).start()
    sessions: list[subprocess.Popen] = []
    try:
        emulator.create_bucket(BUCKET)
        for name, value in emulator.env().items():
            monkeypatch.setenv(name, value)  # this process reads the emulator directly
        direct = {**os.environ, "OMP_NUM_THREADS": "1"}
        slow = {**direct, "STORAGE_EMULATOR_HOST": proxy.url}  # the runner's sessions: the slow link
        store = Emulated(emulator.url)
        spec = write_spec(
            tmp_path / "job.yaml", JOB, STORE, data_root,
            train={"max_epochs": 100000, "early_stopping_epochs": 100000},  # outlasts the test: it ends in a cancel
            # a checkpoint every 3 s of training, none extra at epoch ends; nothing pruned
            checkpoint={"every_minutes": 0.05, "every_epochs": 100000, "keep_last": 100},
            sync={"every_seconds": EVERY_S},
        )

        # -- session A uploads its checkpoints over the slow link ------------------------------
        a_log = tmp_path / "a.log"
        a = background(a_log, "submit", str(spec), "--store", STORE, "--workdir", str(tmp_path / "w1"),
                       env=slow, cwd=tmp_path)
        sessions.append(a)
        a_inflight: set[str] = set()  # every key session A was seen uploading
        previous: list[dict | None] = [None]

        def a_starts_uploading_a_checkpoint() -> dict | None:
            """A state.json showing a checkpoint upload that was not there at the previous poll
            (so it has just begun), once an earlier checkpoint of A's has its manifest."""
            assert a.poll() is None, f"session A exited with {a.returncode}: {a_log.read_text()[-3000:]}"
            state = store.state()
            uploading, before = state.get("uploading"), previous[0]
            previous[0] = uploading
            if not uploading:
                return None
            a_inflight.add(uploading["key"])
            key = uploading["key"]
            if same_upload(uploading, before) or not key.startswith("checkpoints/"):
                return None
            manifests = [k for k in store.objects("checkpoints/") if k.endswith(".json")]
            fresh = key.removesuffix(".pt") + ".json" not in manifests
            return state if manifests and fresh else None

        state = wait_until(a_starts_uploading_a_checkpoint, 240,
                           "session A to start uploading a checkpoint after its first manifest")
        a_session = state["session"]
        inflight = state["uploading"]
        assert inflight["bytes"] > 10_000_000, f"the checkpoint is too small to be slow: {inflight}"
        began = time.monotonic()
        newest_lease_then = max(store.leases())

        # More than 3 sync intervals with that one upload in flight: the tick is blocked on it
        # the whole time, so only the lease's own timer and the heartbeat keep the job alive.
        while time.monotonic() - began < 3 * EVERY_S + 1.5:
            now = store.state()
            assert now.get("session") == a_session
            assert same_upload(now.get("uploading"), inflight), (
                f"the upload of {inflight['key']} ended within 3 sync intervals ({now.get('uploading')}): "
                f"the link is too fast for this test's checkpoint")
            sent = now["uploading"]["sent"]
            assert 0 <= sent <= inflight["bytes"] and sent >= inflight["sent"], (now["uploading"], inflight)
            time.sleep(0.2)
        assert max(store.leases()) > newest_lease_then, "the lease was not renewed while the upload ran"

        shown = cli("status", JOB, "--store", STORE, "--json", env=direct, cwd=tmp_path)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        document = json.loads(shown.stdout)
        assert document["phase"] == "running", (
            f"status during a long upload says {document['phase']!r} (heartbeat {document.get('heartbeat_at')}, "
            f"uploading {document.get('uploading')})")
        assert document["session"] == a_session and document["uploading"]["key"] == inflight["key"]

        refused = cli("attach", JOB, "--store", STORE, "--workdir", str(tmp_path / "w2"), env=slow, cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert a_session in refused.stderr and "holds this job" in refused.stderr, refused.stderr
        assert "--take-over" in refused.stderr, refused.stderr
        still_in_flight = same_upload(store.state().get("uploading"), inflight)  # reported on failure below
        assert a.poll() is None, f"session A ended while refused: {a_log.read_text()[-3000:]}"

        # -- session B takes the job over ------------------------------------------------------
        before_b = store.objects()
        b_log = tmp_path / "b.log"
        b = background(b_log, "attach", JOB, "--store", STORE, "--take-over", "--workdir", str(tmp_path / "w3"),
                       env=slow, cwd=tmp_path)
        sessions.append(b)
        seen_leases: dict[int, dict] = {}
        states: list[dict] = []  # every distinct state.json seen from the take-over on

        def watch() -> None:
            seen_leases.update(store.leases())
            state = store.state()
            if state and (not states or state != states[-1]):
                states.append(state)
            if state.get("session") == a_session and state.get("uploading"):
                a_inflight.add(state["uploading"]["key"])

        def a_exited() -> bool:
            watch()
            assert b.poll() is None, f"session B exited with {b.returncode}: {b_log.read_text()[-3000:]}"
            return a.poll() is not None

        wait_until(a_exited, 240, "session A to stop after the take-over", every=0.1)
        after_a = store.objects()
        a_output = a_log.read_text()
        assert a.returncode == 3, f"session A exited with {a.returncode}, not 3 (taken over): {a_output[-3000:]}"
        assert "taken over" in a_output, a_output[-3000:]

        b_leases = {n: lease for n, lease in seen_leases.items() if lease["owner"] != a_session}
        assert b_leases, f"no lease of session B was seen: {seen_leases}"
        b_first = min(b_leases)
        b_session = b_leases[b_first]["owner"]
        taken_at = server_time(b_leases[b_first]["updated"])
        assert all(n < b_first for n, lease in seen_leases.items() if lease["owner"] == a_session), seen_leases

        # -- what landed after the take-over, and before A was gone ----------------------------
        def token_of(step_key: str) -> int | None:
            manifest = store.json(step_key.removesuffix(".pt") + ".json")
            return manifest.get("token") if manifest else None

        written_after = {k: m for k, m in after_a.items() if server_time(m["updated"]) > taken_at}
        by_a_window, unexplained = [], []
        for key, meta in sorted(written_after.items()):
            if key.startswith("lease/") or key == "spec.yaml" or key.startswith(f"logs/{b_session}/"):
                continue  # the lease protocol; B writes the spec and its own logs when it starts
            if key == "state.json":
                continue  # checked below, generation by generation
            if key.startswith("checkpoints/") and key.endswith(".json"):
                if (token_of(key) or 0) >= b_first:
                    continue  # B's manifest
                unexplained.append((key, meta, f"manifest with A's token {token_of(key)}"))
            elif key in a_inflight:
                by_a_window.append(key)  # A's last in-flight object: the documented window (§6)
            elif key.startswith("checkpoints/") and (token_of(key) or 0) >= b_first:
                continue  # B's checkpoint, its manifest already up
            elif key.startswith("weights/"):
                continue  # A checks the lease before each weights file; B uploads its own
            elif key.startswith("tensorboard/") and (tmp_path / "w3" / key).is_file():
                continue  # B's trainer's event file (the job's one TensorBoard run), in B's work dir
            else:
                unexplained.append((key, meta, "not B's"))
        assert not unexplained, (
            f"written after session B took the lease ({taken_at}) and not by B: {unexplained}; "
            f"A's in-flight uploads: {sorted(a_inflight)}; B's first token {b_first}")

        vanished = sorted(k for k in before_b if not k.startswith("lease/") and k not in after_a)
        assert not vanished, f"deleted around the take-over (nothing is pruned in this test): {vanished}"

        sessions_seen = [s.get("session") for s in states]
        if b_session in sessions_seen:
            first_b = sessions_seen.index(b_session)
            assert a_session not in sessions_seen[first_b:], (
                f"session A wrote state.json after session B had: {sessions_seen}")

        # -- let B upload a checkpoint of its own, then cancel it ------------------------------
        proxy.rate = FAST

        def b_manifest() -> bool:
            assert b.poll() is None, f"session B exited with {b.returncode}: {b_log.read_text()[-3000:]}"
            watch()
            return any((m.token or 0) >= b_first for m in store.manifests().values())

        wait_until(b_manifest, 240, "a checkpoint manifest from session B")
        cancelled = cli("cancel", JOB, "--store", STORE, env=direct, cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        try:
            b_code = b.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"session B did not stop after the cancel: {b_log.read_text()[-3000:]}")
        assert b_code == 0, f"session B exited with {b_code}: {b_log.read_text()[-3000:]}"
        watch()

        # -- the store at the end --------------------------------------------------------------
        final = store.state()
        assert final["session"] == b_session and final["phase"] == "cancelled", final
        history = [s["id"] for s in final["sessions"]]
        assert a_session in history and b_session in history, history
        sessions_seen = [s.get("session") for s in states]
        first_b = sessions_seen.index(b_session)
        assert a_session not in sessions_seen[first_b:], f"session A wrote state.json after B: {sessions_seen}"

        manifests = store.manifests()
        assert manifests, "no manifests in the store"
        for key, manifest in sorted(manifests.items()):
            assert manifest.token is not None, f"{key} has no token"
            meta = store.objects(key)[key]
            if manifest.token < b_first:  # A's: written before B took the lease
                assert server_time(meta["updated"]) < taken_at, (
                    f"{key} carries A's token {manifest.token} but was written at {meta['updated']}, after "
                    f"B took the lease ({taken_at})")
            local = tmp_path / "verify" / key.replace("/", "_").removesuffix(".json")
            local.parent.mkdir(exist_ok=True)
            data_key = key.removesuffix(".json") + ".pt"
            assert store.job.get_file(data_key, local), f"{data_key} is missing though {key} exists"
            assert local.stat().st_size == manifest.size, f"{data_key}: size differs from {key}"
            assert sha256_of(local) == manifest.sha256, (
                f"{data_key} does not match {key} (token {manifest.token}); A's window objects: {by_a_window}")
            local.unlink()
        assert any(m.token < b_first for m in manifests.values()), "A's manifests are gone"
        assert any(m.token >= b_first for m in manifests.values()), "B wrote no manifest"

        print(f"A {a_session}: tokens < {b_first}, exit {a.returncode}; B {b_session}: first token {b_first}; "
              f"uploading when the checks ran: {inflight} (still in flight after the refused attach: "
              f"{still_in_flight}); A's objects that landed after the take-over (documented window): "
              f"{by_a_window}; manifests: {sorted((m.step, m.token) for m in manifests.values())}")

        # B's status before its uploads start must not claim the upload A had in flight.
        preparing = [s for s in states if s.get("session") == b_session and s.get("phase") == "preparing"]
        stale = [s["uploading"] for s in preparing if s.get("uploading")]
        assert not stale, (
            f"session B's state.json while preparing (before its syncer starts) shows uploads {stale}, "
            f"carried over from session A's status (A's in-flight uploads: {sorted(a_inflight)}; the "
            f"take-over came {'during' if still_in_flight else 'after'} the long upload)")
    finally:
        for proc in sessions:
            stop(proc)
        proxy.close()
        emulator.close()
