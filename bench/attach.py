"""Seconds from `runner attach` on a fresh work dir to the first training step, split into
checkpoint download, data preparation and start-up; the baseline is a first `submit` of the
same job (no checkpoint to fetch) in the same run.

    python bench/attach.py [--frames 32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ENV, prepare_frames, write_spec  # noqa: E402
from contract.events import read_events  # noqa: E402


def first_step_after(cmd: list[str], work: Path) -> tuple[float, subprocess.Popen]:
    """Start `cmd`; seconds until the trainer reports its first progress."""
    began = time.time()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    path = work / "events.jsonl"
    while True:
        if path.exists():
            progress = [e for e in read_events(path) if e["kind"] == "progress" and e["t"] > began]
            if progress:
                return progress[0]["t"] - began, proc
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} ended before a training step")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_frames(tmp / "data", args.frames, 8)
        spec = write_spec(tmp / "job.yaml", "bench-attach", tmp / "store", tmp / "data", args.frames, 8,
                          epochs=50, sync_s=1.0)
        submit_s, proc = first_step_after([sys.executable, "-m", "runner", "submit", str(spec), "--workdir",
                                           str(tmp / "w1")], tmp / "w1")
        while not list((tmp / "store" / "bench-attach" / "checkpoints").glob("*.json")):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(3.5)  # the dead session's lease lapses after 3 sync intervals
        before = json.loads((tmp / "store" / "bench-attach" / "state.json").read_text())["goodput"]
        attach_s, proc = first_step_after([sys.executable, "-m", "runner", "attach", "bench-attach", "--store",
                                           str(tmp / "store"), "--workdir", str(tmp / "w2")], tmp / "w2")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        state = json.loads((tmp / "store" / "bench-attach" / "state.json").read_text())
    download = state["goodput"]["restoring_s"] - before["restoring_s"]
    prep = state["goodput"]["preparing_s"] - before["preparing_s"]
    print(f"first submit to first step: {submit_s:.1f} s (baseline)")
    print(f"attach on a fresh work dir to first step: {attach_s:.1f} s: download {download:.2f} s, "
          f"data prep {prep:.2f} s, start-up (lease, trainer launch, model, loaders) {attach_s - download - prep:.1f} s")
    print(f"ratio attach / first submit: {attach_s / submit_s:.2f}")


if __name__ == "__main__":
    main()
