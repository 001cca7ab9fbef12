"""Seconds for `runner logs JOB --store gs://...` of a long job on the GCS emulator, against the
old one-part-at-a-time reading in the same run.

    python bench/logs.py [--sessions 3] [--parts 720] [--repeat 3] [--latency-ms 0]

The job: `--sessions` sessions of 12 h syncing every 60 s, each with `--parts` parts of
trainer.log (~3 KB) and of events.jsonl (~2 KB), plus spec.yaml and state.json, written to the
fake-gcs-server the tests use (tests/gcs_emulator.py). Every figure is the real CLI (or the
baseline script) as a subprocess, so each includes a fresh interpreter's start-up:

  baseline   bench/baselines/logs_one_at_a_time.py: the old reading, one request per part
  parts      `runner logs` on the same store: the parts fetched 16 at a time (sessions that
             ended without their final flush are read this way)
  merged     `runner logs` once each session's parts are merged into one object per log, as
             the syncer leaves a session that ends (written here directly, with the same names)
  start-up   `runner logs` of a job without logs: the floor under the others

The emulator on 127.0.0.1 answers in about a millisecond, where GCS from a laptop or a Colab VM
takes tens: `--latency-ms` puts a proxy in front of it that holds each request that long, to see
what fetching parts many at a time buys on such a link. Each is run `--repeat` times, interleaved; the minimum, median and maximum are printed. The
outputs are compared byte for byte, so a faster reader that prints something else fails here.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ENV, ROOT  # noqa: E402
from contract.files import EVENTS_FILE, TRAINER_LOG  # noqa: E402
from runner import layout  # noqa: E402
from runner.logs import merged_name, part_name  # noqa: E402
from runner.spec import dump_spec, parse_spec  # noqa: E402
from runner.status import JobState  # noqa: E402
from runner.store import JobStore, Store  # noqa: E402
from tests.gcs_emulator import GcsEmulator  # noqa: E402

JOB = "bench-logs"
GOAL_S = 5.0
BASELINE = ROOT / "bench" / "baselines" / "logs_one_at_a_time.py"


def trainer_part(session: int, part: int) -> bytes:
    """~3 KB: a minute of progress lines."""
    return b"".join(f"2026-01-0{session + 1} {part // 60:02d}:{part % 60:02d}:{second:02d},123 INFO epoch {part // 40} "
                    f"step {part * 25 + second // 3}/1000 loss 0.{part:04d}{second:02d} lr 1.0e-04 "
                    f"12.34 samples/s eta 3:21:00 rung batch 4 720x405\n".encode() for second in range(0, 60, 2))


def events_part(session: int, part: int) -> bytes:
    """~2 KB: a minute of progress events."""
    return b"".join(json.dumps({"t": 1767225600 + 86400 * session + 60 * part + second, "kind": "progress",
                                "epoch": part // 40, "step": part * 25 + second // 3, "steps_per_epoch": 1000,
                                "loss": 0.1234, "samples_per_s": 12.34}).encode() + b"\n"
                    for second in range(0, 60, 5))


def write_job(job: JobStore, url: str, sessions: int, parts: int) -> tuple[dict[str, bytes], bytes]:
    """The job's objects; returns its log parts (key → bytes) and the trainer.log that `runner logs`
    must print."""
    job.put_bytes(layout.SPEC, dump_spec(parse_spec({"name": JOB, "store": url})).encode())
    job.put_bytes(layout.STATE, JobState(job=JOB, phase="paused", reason="session limit").model_dump_json().encode())
    objects: dict[str, bytes] = {}
    expected = b""
    for session in range(sessions):
        folder = f"2026010{session + 1}T000000Z-colab-{4242 + session}"
        for part in range(1, parts + 1):
            objects[layout.log_key(folder, part_name(TRAINER_LOG, part))] = trainer_part(session, part)
            objects[layout.log_key(folder, part_name(EVENTS_FILE, part))] = events_part(session, part)
            expected += objects[layout.log_key(folder, part_name(TRAINER_LOG, part))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: job.put_bytes(*item), objects.items()))
    return objects, expected


def merge(job: JobStore, objects: dict[str, bytes], parts: int) -> None:
    """Each session's parts of each log in one object, then the parts deleted: the store as a
    session's final flush leaves it (runner/sync.py `_merge_logs`)."""
    merged: dict[str, bytes] = {}
    for key, data in objects.items():
        folder, _, leaf = key.rpartition("/")
        log = leaf.rpartition(".")[0]
        name = f"{folder}/{merged_name(log, 1, parts)}"
        merged[name] = merged.get(name, b"") + data
    for key, data in merged.items():
        job.put_bytes(key, data)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(job.delete, objects))


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk a client sends for `latency_s` before passing
    it on: each request waits that long, as on a link with that round trip; replies pass at once."""

    def __init__(self, target_port: int, latency_s: float) -> None:
        self.target_port = target_port
        self.latency_s = latency_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._copy, args=(client, server, self.latency_s), daemon=True).start()
            threading.Thread(target=self._copy, args=(server, client, 0.0), daemon=True).start()

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket, delay_s: float) -> None:
        try:
            while data := source.recv(65536):
                time.sleep(delay_s)
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def timed(command: list[str], expected: bytes | None) -> float:
    began = time.monotonic()
    result = subprocess.run(command, env=ENV, capture_output=True, cwd=ROOT)
    took = time.monotonic() - began
    if result.returncode != 0 or (expected is not None and result.stdout != expected):
        raise SystemExit(f"{' '.join(command)}: rc {result.returncode}, {len(result.stdout)} bytes printed "
                         f"({len(expected or b'')} expected): {result.stderr.decode(errors='replace')[-500:]}")
    return took


def spread(times: list[float]) -> str:
    return f"{min(times):6.2f} s (median {statistics.median(times):.2f}, max {max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--parts", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request to the store")
    args = parser.parse_args()
    with GcsEmulator() as emulator:
        env = emulator.env()
        if args.latency_ms > 0:
            env["STORAGE_EMULATOR_HOST"] = DelayProxy(emulator.port, args.latency_ms / 1000).url
        os.environ.update(env)
        ENV.update(env)
        emulator.create_bucket(JOB)
        url = f"gs://{JOB}/runs"
        store = Store(url)
        began = time.monotonic()
        objects, expected = write_job(store.job(JOB), url, args.sessions, args.parts)
        print(f"job: {args.sessions} sessions x {args.parts} parts x 2 logs = {len(objects)} objects, "
              f"{args.latency_ms:.0f} ms added per request, "
              f"trainer.log {len(expected) / 2**20:.1f} MiB (written in {time.monotonic() - began:.0f} s)")
        store.job("empty").put_bytes(layout.SPEC, dump_spec(parse_spec({"name": "empty", "store": url})).encode())

        ours = [sys.executable, "-m", "runner", "logs", JOB, "--store", url]
        baseline, parts, merged, startup = [], [], [], []
        for _ in range(args.repeat):
            baseline.append(timed([sys.executable, str(BASELINE), JOB, url], expected))
            parts.append(timed(ours, expected))
            startup.append(timed([sys.executable, "-m", "runner", "logs", "empty", "--store", url], b""))
        merge(store.job(JOB), objects, args.parts)
        for _ in range(args.repeat):
            merged.append(timed(ours, expected))

    print(f"baseline, one part at a time:  {spread(baseline)}")
    print(f"ours, parts 16 at a time:      {spread(parts)}   ratio baseline/ours {min(baseline) / min(parts):.2f}")
    print(f"ours, sessions merged:         {spread(merged)}   ratio baseline/ours {min(baseline) / min(merged):.2f}")
    print(f"start-up (a job without logs): {spread(startup)}")
    best = min(merged)
    verdict = "met" if best <= GOAL_S else f"missed by {best - GOAL_S:.2f} s"
    print(f"goal: `runner logs` of such a job within {GOAL_S:.0f} s: {best:.2f} s, {best / GOAL_S:.2f} of the goal, {verdict}")


if __name__ == "__main__":
    main()
