"""Trainer throughput under the supervisor syncing every 2 s, against the trainer alone.

    python bench/sync_overhead.py [--frames 48] [--epochs 2]

Both runs train the same config on the same synthetic frames on this machine's CPU; the
supervisor's uploads (checkpoints every 3 s, logs, status) go to a local store.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ENV, prepare_frames, training_rate, write_spec  # noqa: E402
from runner.spec import load_spec  # noqa: E402
from runner.attempt import attempt_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_frames(tmp / "data", args.frames, 8)
        spec_path = write_spec(tmp / "job.yaml", "bench-sync", tmp / "store", tmp / "data", args.frames, 8,
                               epochs=args.epochs, sync_s=2.0)
        spec = load_spec(spec_path)
        config = attempt_config(spec, spec.ladder()[0], tmp / "data" / "train", tmp / "data" / "valid")
        config.save(tmp / "alone" / "config.yaml")
        subprocess.run([sys.executable, "-m", "trainer", "train", "--config", str(tmp / "alone" / "config.yaml"),
                        "--workdir", str(tmp / "alone")], check=True, env=ENV, capture_output=True)
        alone = training_rate(tmp / "alone" / "events.jsonl")
        subprocess.run([sys.executable, "-m", "runner", "submit", str(spec_path), "--workdir", str(tmp / "work")],
                       check=True, env=ENV, capture_output=True)
        supervised = training_rate(tmp / "work" / "events.jsonl")
    print(f"trainer alone: {alone:.2f} samples/s")
    print(f"under the supervisor, syncing every 2 s: {supervised:.2f} samples/s")
    print(f"ratio supervised / alone: {supervised / alone:.3f}")


if __name__ == "__main__":
    main()
