"""`predict` throughput on the CPU: frames/s at 960x540, against the network's forward pass alone.

    python bench/predict.py [--frames N] [--batch-size 2] [--archs hrnet_w18_small hrnet_w48]

Ours: `trainer.inference.predict.predict` on synthetic 960x540 frames (decode, resize, forward,
keypoints, camera step, files), weights with random values and input size 960x540. Baseline: the
same network's forward pass alone on as many frames, already in memory as tensors, in the same
process, after one warm-up batch that both share (the CPU's kernels are chosen on first use of a
shape). The ratio is what the rest of predict costs. Frames default to 8 for w18_small and 2 for
w48 (about 12 s a frame on two cores), about a minute and a half in all. Random weights find no keypoint, so the camera step stops early here; its cost for
a trained model is printed apart, from the frames' true keypoints.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer.data.cache import load_keypoints  # noqa: E402
from trainer.data.keypoints.table import VISIBLE  # noqa: E402
from trainer.data.soccernet import NATIVE_SIZE, read_split  # noqa: E402
from trainer.data.synthetic.generate import generate  # noqa: E402
from trainer.evaluation.camera import estimate_camera  # noqa: E402
from trainer.inference.predict import predict  # noqa: E402
from trainer.inference.weights import WeightsMeta, write_weights  # noqa: E402
from trainer.model.heads import KeypointNet  # noqa: E402


DEFAULT_FRAMES = {"hrnet_w18_small": 8, "hrnet_w48": 2}


def forward_rate(net: KeypointNet, frames: int, batch_size: int) -> float:
    """Frames/s of the forward pass alone on inputs already in memory, after one warm-up batch."""
    width, height = NATIVE_SIZE
    images = torch.rand(frames, 3, height, width)
    with torch.inference_mode():
        net(images[:batch_size])
        start = time.perf_counter()
        for i in range(0, frames, batch_size):
            net(images[i:i + batch_size])
    return frames / (time.perf_counter() - start)


def camera_rate(split_dir: Path) -> float:
    """Frames/s of the camera step on one core, from the frames' true keypoints (confidence 1)."""
    keypoints, _ = load_keypoints(read_split(split_dir), size=NATIVE_SIZE)
    confident = [np.c_[k[:, :2], np.where(k[:, 2] == VISIBLE, 1.0, 0.0)] for k in keypoints]
    start = time.perf_counter()
    cameras = sum(estimate_camera(k, *NATIVE_SIZE) is not None for k in confident)
    rate = len(confident) / (time.perf_counter() - start)
    print(f"  camera step from true keypoints: {rate:.1f} frames/s on one core ({cameras}/{len(confident)} cameras);"
          f" predict spreads it over the CPUs")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="per arch (default: 8 for w18_small, 2 for w48)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["hrnet_w18_small", "hrnet_w48"])
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        frames_dir = Path(tmp) / "frames"
        generate(frames_dir, frames=max(args.frames or 0, *DEFAULT_FRAMES.values()), seed=0)
        print(f"predict on the CPU ({torch.get_num_threads()} threads) at {NATIVE_SIZE[0]}x{NATIVE_SIZE[1]}, "
              f"random weights, batch {args.batch_size}")
        for arch in args.archs:
            frames = args.frames or DEFAULT_FRAMES.get(arch, 2)
            net = KeypointNet(arch).eval()
            weights = Path(tmp) / f"{arch}.pt"
            write_weights(weights, net.state_dict(),
                          WeightsMeta(arch=arch, input_size=NATIVE_SIZE, batch_size=args.batch_size))
            baseline = forward_rate(net, frames, args.batch_size)
            inputs = sorted(frames_dir.glob("*.jpg"))[:frames]
            summary = predict(weights, inputs, Path(tmp) / f"out-{arch}", device="cpu")
            ours = summary.frames / summary.seconds
            print(f"  {arch:<16} {frames} frames: predict {ours:6.3f} frames/s, forward alone {baseline:6.3f} "
                  f"frames/s, ratio {ours / baseline:.2f}")
        camera_rate(frames_dir)


if __name__ == "__main__":
    main()
