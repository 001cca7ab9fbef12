"""Training-step throughput and the stall a checkpoint costs, in one run.

    python bench/train_step.py [--arch hrnet_w18_small] [--size 480 270] [--batch 2] [--steps 10]

Prints samples/s of the real train step (HeatmapModel.train_step: forward, heatmap loss,
backward, Adam) on synthetic tensors, then the training stall of a background checkpoint
(the CPU snapshot only) against a synchronous torch.save of the same state, and their ratio.
On a CUDA machine pass --device cuda --amp (e.g. hrnet_w48 at 960 540 and 720 405).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainer.model.metamodel import HeatmapModel
from trainer.training.checkpoint import BackgroundWriter
from trainer.training.state import capture


def make_batch(batch: int, width: int, height: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(batch, 57, 3, generator=generator) * torch.tensor([width, height, 1.0])
    keypoints[..., 2] = 1.0
    image = torch.randint(0, 255, (batch, 3, height, width), dtype=torch.uint8, generator=generator)
    return {"image": image.to(device), "keypoints": keypoints.to(device), "index": torch.arange(batch)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="hrnet_w18_small")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 270], metavar=("W", "H"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    width, height = args.size

    model = HeatmapModel({"nn_module": {"arch": args.arch}, "optimizer": {"lr": 1e-4},
                          "loss": {"stride": 2, "sigma": 3.0}, "device": str(device)})
    model.setup(amp=args.amp, accumulation=1)
    model.epoch_end = 10**12
    batch = make_batch(args.batch, width, height, device)
    for _ in range(2):  # warm-up: allocator, cudnn autotune, oneDNN primitives
        model.train_step(batch, None)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_step(batch, None)
    sync(device)
    elapsed = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.arch} {width}x{height} batch {args.batch} on {name}{' AMP' if args.amp else ''}: "
          f"{args.batch * args.steps / elapsed:.2f} samples/s ({elapsed / args.steps * 1000:.0f} ms/step)")

    state = capture(model, {}, {}, None)
    with tempfile.TemporaryDirectory() as tmp:
        saves = []
        for i in range(3):
            t = time.perf_counter()
            torch.save(state, Path(tmp) / f"sync-{i}.pt")
            saves.append(time.perf_counter() - t)
        writer = BackgroundWriter(Path(tmp) / "checkpoints", keep_last=2)
        stalls = []
        for step in range(1, 4):
            writer.wait()  # measure the stall alone, not the wait for the previous write
            t = time.perf_counter()
            writer.save(capture(model, {}, {}, None), step, 0, 0, {})
            stalls.append(time.perf_counter() - t)
        writer.wait()
    size_mb = sum(t.numel() * t.element_size() for t in model.nn_module.state_dict().values()) / 1e6
    sync_ms, stall_ms = statistics.median(saves) * 1000, statistics.median(stalls) * 1000
    print(f"checkpoint (model {size_mb:.0f} MB + optimizer): training stall {stall_ms:.1f} ms with the background "
          f"writer vs {sync_ms:.1f} ms for a synchronous torch.save; ratio {sync_ms / stall_ms:.1f}x")


if __name__ == "__main__":
    main()
