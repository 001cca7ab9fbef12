"""The GPU check (issue 14): what a CUDA machine does with the real jobs, in one table.

    bash bench/gpu.sh            # or: python bench/gpu.py [--steps 8] [--jobs jobs/t4.yaml jobs/a24.yaml]

1. hrnet_w48 AMP training samples/s and peak memory at every rung of each job's OOM ladder
   (the real train step, HeatmapModel.train_step, on random frames; no pretrained download);
2. a real CUDA out-of-memory: `runner submit` of a tiny job whose first rung cannot fit on this
   GPU; the trainer must exit 75 (read from the attempt's events) and the ladder's next rung
   must train to the end;
3. the training stall of a checkpoint with the background writer (the GPU -> CPU snapshot)
   against a synchronous torch.save of the same state;
4. the cost of the per-step `loss.item()` (a GPU sync) against the same steps without it.

Without a CUDA GPU it prints one line and exits 0. Under 8 minutes on a T4/A10/H100-class GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import ENV  # noqa: E402
from bench.train_step import make_batch  # noqa: E402
from contract.config import Rung  # noqa: E402
from contract.events import read_events  # noqa: E402
from runner.spec import load_spec  # noqa: E402
from trainer.model.metamodel import HeatmapModel  # noqa: E402
from trainer.training.checkpoint import BackgroundWriter  # noqa: E402
from trainer.training.signals import is_out_of_memory  # noqa: E402
from trainer.training.state import capture  # noqa: E402

GIB = 2**30
BUDGET_S = 460  # bench/gpu.sh stops everything at 480 s
Row = tuple[str, ...]


def build(arch: str, rung: Rung, device: torch.device) -> HeatmapModel:
    model = HeatmapModel({"nn_module": {"arch": arch}, "optimizer": {"lr": 1e-4},
                          "loss": {"stride": 2, "sigma": 3.0}, "device": str(device)})
    model.setup(amp=True, accumulation=rung.accumulation)
    model.nn_module.set_activation_checkpointing(rung.activation_checkpointing)
    model.epoch_end = 10**12
    return model


def measure_rung(arch: str, rung: Rung, steps: int, device: torch.device) -> tuple[str, str]:
    """(samples/s, peak GiB) of the real train step on this rung, or OOM."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    width, height = rung.input_size
    try:
        model = build(arch, rung, device)
        batch = make_batch(rung.batch_size, width, height, device)
        for _ in range(2 * rung.accumulation):  # cudnn autotune, allocator
            model.train_step(batch, None)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps * rung.accumulation):
            model.train_step(batch, None)
        torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - an OOM is a result here; anything else is reported
        if not is_out_of_memory(error):
            raise
        return "OOM", f">{torch.cuda.get_device_properties(device).total_memory / GIB:.0f}"
    finally:
        model = batch = None  # noqa: F841 - free the rung's memory before the next one
        torch.cuda.empty_cache()
    rate = rung.batch_size * steps * rung.accumulation / elapsed
    return f"{rate:.1f}", f"{torch.cuda.max_memory_allocated(device) / GIB:.2f}"


def ladder_rows(jobs: list[Path], steps: int, device: torch.device) -> tuple[list[Row], dict[str, float]]:
    rows, per_sample = [], {}
    for job in jobs:
        spec = load_spec(job)
        for index, rung in enumerate(spec.ladder()):
            rate, peak = measure_rung(spec.model.arch, rung, steps, device)
            rows.append((job.name, f"rung {index}: {rung.describe()}", f"{rate} samples/s", f"peak {peak} GiB"))
            if rate != "OOM" and not rung.activation_checkpointing:
                key = f"{rung.input_size[0]}x{rung.input_size[1]}"
                per_sample[key] = max(per_sample.get(key, 0.0), float(peak) * GIB / rung.batch_size)
    return rows, per_sample


def oom_rows(per_sample: dict[str, float], device: torch.device, work: Path, timeout_s: float) -> list[Row]:
    """A job whose first rung needs about three times this GPU's memory; the ladder's second fits."""
    size = (960, 540)
    bytes_per_sample = per_sample.get(f"{size[0]}x{size[1]}", 2 * GIB)  # peak / batch: over, never under
    total = torch.cuda.get_device_properties(device).total_memory
    big = max(8, math.ceil(3 * total / bytes_per_sample))
    frames = big  # the trainer refuses a batch larger than the split; the supervisor renders them
    data = work / "frames"
    spec = {
        "name": "gpu-oom", "store": str(work / "runs"),
        "data": {"source": "synthetic", "root": str(data), "frames": frames, "valid_frames": 4, "num_workers": 4},
        "model": {"arch": "hrnet_w48"},
        "train": {"batch_size": big, "input_size": list(size), "max_epochs": 1, "amp": True, "device": "cuda"},
        "oom": {"batch_sizes": [big, 2], "input_sizes": [list(size)], "keep_effective_batch": False,
                "activation_checkpointing": False},
        "checkpoint": {"every_minutes": 60},
        "sync": {"every_seconds": 5},
    }
    path = work / "gpu-oom.yaml"
    path.write_text(json.dumps(spec))
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "runner", "submit", str(path)], capture_output=True,
                                text=True, env=ENV, cwd=work, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [("real OOM", f"batch {big} at {size[0]}x{size[1]}", "NOT FINISHED", f"over {timeout_s:.0f} s")]
    elapsed = time.perf_counter() - started
    state = json.loads((work / "runs" / "gpu-oom" / "state.json").read_text())
    events = work / ".runner" / "gpu-oom" / "events.jsonl"  # the `oom` event comes with the trainer's exit 75
    oom_exit = events.exists() and any(event["kind"] == "oom" for event in read_events(events))
    rung = state.get("rung") or {}
    ok = result.returncode == 0 and state.get("phase") == "done" and len(state.get("ooms", [])) == 1 \
        and rung.get("index") == 1
    return [("real OOM", f"batch {big} at {size[0]}x{size[1]} -> rung 1 (batch 2)",
             f"{'caught, exit 75, next rung done' if ok else 'NOT AS EXPECTED'}"
             f"{'' if oom_exit else ' (no oom event from the trainer)'}",
             f"runner exit {result.returncode}, phase {state.get('phase')}, {elapsed:.0f} s")]


def checkpoint_rows(device: torch.device) -> list[Row]:
    rung = Rung(batch_size=2, input_size=(640, 360))
    model = build("hrnet_w48", rung, device)
    batch = make_batch(2, 640, 360, device)
    model.train_step(batch, None)  # the optimizer state exists, as in a real checkpoint
    state = capture(model, {}, {}, None)
    with tempfile.TemporaryDirectory() as tmp:
        saves, stalls = [], []
        for i in range(3):
            start = time.perf_counter()
            torch.save(state, Path(tmp) / f"sync-{i}.pt")
            saves.append(time.perf_counter() - start)
        writer = BackgroundWriter(Path(tmp) / "checkpoints", keep_last=2)
        for step in range(1, 4):
            writer.wait()
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            writer.save(capture(model, {}, {}, None), step, 0, 0, {})
            stalls.append(time.perf_counter() - start)
        writer.wait()
        size = (Path(tmp) / "sync-0.pt").stat().st_size / 2**20
    sync_ms, stall_ms = statistics.median(saves) * 1000, statistics.median(stalls) * 1000
    return [("checkpoint", f"hrnet_w48 state, {size:.0f} MiB", f"stall {stall_ms:.0f} ms (background writer)",
             f"torch.save {sync_ms:.0f} ms; {sync_ms / stall_ms:.1f}x")]


def item_rows(steps: int, device: torch.device) -> list[Row]:
    """The same AMP steps with and without reading the loss back each step."""
    rung = Rung(batch_size=4, input_size=(720, 405))
    model = build("hrnet_w48", rung, device)
    batch = make_batch(4, 720, 405, device)
    images = batch["image"].float().div(255)
    net, scaler, optimizer = model.nn_module, model.scaler, model.optimizer

    def run(read_loss: bool) -> float:
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cuda"):
                logits = net(images)
            loss = model.loss(logits, batch["keypoints"])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if read_loss:
                loss.item()
        torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / steps * 1000

    run(True)  # warm-up
    with_item, without = statistics.median(run(True) for _ in range(3)), statistics.median(run(False) for _ in range(3))
    return [("loss.item()", "hrnet_w48 batch 4 at 720x405", f"{with_item:.1f} ms/step with",
             f"{without:.1f} ms/step without; cost {with_item - without:+.1f} ms ({with_item / without:.3f}x)")]


def print_table(rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per rung")
    parser.add_argument("--jobs", type=Path, nargs="+", default=[ROOT / "jobs" / "t4.yaml", ROOT / "jobs" / "a24.yaml"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu.py: skipped: no CUDA GPU is visible on this machine")
        return 0
    device = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    rows: list[Row] = [("check", "what", "result", "detail")]
    print(f"GPU: {torch.cuda.get_device_name(device)}, "
          f"{torch.cuda.get_device_properties(device).total_memory / GIB:.0f} GiB, torch {torch.__version__}",
          flush=True)
    ladder, per_sample = ladder_rows(args.jobs, args.steps, device)
    rows += ladder
    rows += checkpoint_rows(device)
    rows += item_rows(args.steps, device)
    with tempfile.TemporaryDirectory() as tmp:  # last: it gets what is left of the 8 minutes
        rows += oom_rows(per_sample, device, Path(tmp), max(60.0, BUDGET_S - (time.perf_counter() - started)))
    print_table(rows)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    sys.exit(main())
