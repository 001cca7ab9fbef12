"""Trainer throughput under the supervisor syncing every 2 s, against the trainer alone.

    python bench/sync_overhead.py [--frames 160] [--epochs 3] [--rounds 4]

Both runs train the same config on the same synthetic frames on this machine's CPU; the
supervisor's uploads (checkpoints every 3 s, logs, status) go to a local store. Rounds alternate
alone and supervised, so a machine that gets busier or quieter meanwhile weighs on both; each
round's ratio is printed, then their spread.

The ratio moves by several per cent between rounds on a shared machine, more than the supervisor
can cost, so the supervisor's own CPU is measured too (from /proc, Linux only): the CPU seconds
it used while its trainer trained (first to last progress report), as a share of one core. That
bounds what it can take from the trainer, however noisy the throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ENV, prepare_frames, training_rate, write_spec  # noqa: E402
from contract.events import read_events  # noqa: E402
from runner.attempt import attempt_config  # noqa: E402
from runner.spec import load_spec  # noqa: E402

GOAL = 0.99
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of the process itself (not its children), from /proc; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime: fields 14 and 15 of stat(5)


def supervised_run(command: list[str], events: Path) -> tuple[float, float | None, float]:
    """Run the supervisor; its trainer's samples/s, the supervisor's CPU seconds while the trainer
    trained (None without /proc), and that training time in seconds."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        while proc.poll() is None:
            cpu = cpu_seconds(proc.pid)
            if cpu is not None:
                samples.append((time.time(), cpu))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"the supervised run failed ({proc.returncode}): {stderr.decode(errors='replace')[-800:]}")
    progress = [e["t"] for e in read_events(events) if e["kind"] == "progress"]
    began, ended = progress[0], progress[-1]
    inside = [cpu for t, cpu in samples if began <= t <= ended]
    used = inside[-1] - inside[0] if len(inside) > 1 else None
    return training_rate(events), used, ended - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    ratios, shares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_frames(tmp / "data", args.frames, 8)
        for round_ in range(1, args.rounds + 1):
            here = tmp / f"round-{round_}"
            here.mkdir()
            spec_path = write_spec(here / "job.yaml", "bench-sync", here / "store", tmp / "data", args.frames, 8,
                                   epochs=args.epochs, sync_s=2.0)
            spec = load_spec(spec_path)
            config = attempt_config(spec, spec.ladder()[0], tmp / "data" / "train", tmp / "data" / "valid")
            config.save(here / "alone" / "config.yaml")
            subprocess.run([sys.executable, "-m", "trainer", "train", "--config", str(here / "alone" / "config.yaml"),
                            "--workdir", str(here / "alone")], check=True, env=ENV, capture_output=True)
            alone = training_rate(here / "alone" / "events.jsonl")
            supervised, used, training_s = supervised_run(
                [sys.executable, "-m", "runner", "submit", str(spec_path), "--workdir", str(here / "work")],
                here / "work" / "events.jsonl")
            ratios.append(supervised / alone)
            share = f"{used:.2f} CPU s in {training_s:.0f} s of training" if used is not None else "CPU n/a"
            if used is not None:
                shares.append(used / training_s)
            print(f"round {round_}: alone {alone:.3f} samples/s, supervised {supervised:.3f} samples/s, "
                  f"ratio {supervised / alone:.3f}; supervisor {share}", flush=True)
    median = statistics.median(ratios)
    print(f"ratio supervised / alone: median {median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, "
          f"{len(ratios)} rounds); goal >= {GOAL:.2f}: {'met' if median >= GOAL else f'missed by {GOAL - median:.3f}'}")
    if shares:
        print(f"supervisor CPU while its trainer trained: {100 * max(shares):.2f} % of one core at most "
              f"({os.cpu_count()} cores here)")


if __name__ == "__main__":
    main()
