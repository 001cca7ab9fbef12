"""Training data loader throughput: samples/s, against a naive pipeline in the same run.

    python bench/loader.py [--frames 64] [--workers 2] [--batch-size 4] [--epochs 2]

Ours: keypoints from the cache (built before timing), uint8 augmentation with albumentations
after the resize, uint8 CHW tensors. Baseline: what a first version does: derive the keypoints
for every sample, convert the image to float64 and do colour jitter and noise in numpy at full
size, cv2 resize, float32 tensors. Both run on the same synthetic SoccerNet-format frames, with
the same workers and batch size; the first epoch warms the workers up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from trainer.data.keypoints.derivation import derive_keypoints  # noqa: E402
from trainer.data.keypoints.table import flip_keypoints  # noqa: E402
from trainer.data.loader import build_dataset, make_loader  # noqa: E402
from trainer.data.soccernet import NATIVE_SIZE, read_split  # noqa: E402
from trainer.data.synthetic.generate import generate  # noqa: E402
from trainer.data.transforms import scale_keypoints  # noqa: E402


class NaiveDataset(Dataset):
    """The baseline: no cache, float64 numpy augmentation at full size."""

    def __init__(self, split_dir: Path, input_size: tuple[int, int], seed: int) -> None:
        self.frames = read_split(split_dir).frames
        self.input_size = input_size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, object]:
        frame = self.frames[index]
        rng = np.random.default_rng([self.seed, index])
        annotation = json.loads(frame.image_path.with_suffix(".json").read_text())
        keypoints = derive_keypoints(annotation, *NATIVE_SIZE)
        image = cv2.cvtColor(cv2.imread(str(frame.image_path)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
        image = image * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
        mean = image.mean()
        image = (image - mean) * rng.uniform(0.8, 1.2) + mean
        gray = image.mean(axis=2, keepdims=True)
        image = (image - gray) * rng.uniform(0.8, 1.2) + gray
        image = image + rng.normal(0.0, rng.uniform(0.01, 0.05), image.shape)
        image = np.clip(image, 0.0, 1.0)
        if rng.random() < 0.5:
            image = image[:, ::-1]
            keypoints = flip_keypoints(keypoints, NATIVE_SIZE[0])
        image = cv2.resize(np.ascontiguousarray(image), self.input_size, interpolation=cv2.INTER_AREA)
        keypoints = scale_keypoints(keypoints, NATIVE_SIZE, self.input_size)
        return {
            "image": torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32)),
            "keypoints": torch.from_numpy(keypoints),
            "frame_id": frame.frame_id,
        }


def samples_per_s(loader: DataLoader, epochs: int, set_epoch) -> float:
    set_epoch(0)
    for _ in loader:
        pass
    count = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        set_epoch(epoch)
        for batch in loader:
            count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-size", type=int, nargs=2, default=list(NATIVE_SIZE), metavar=("W", "H"))
    args = parser.parse_args()
    input_size = (args.input_size[0], args.input_size[1])
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        split_dir = Path(tmp) / "train"
        start = time.perf_counter()
        generate(split_dir, frames=args.frames, seed=0)
        print(f"generated {args.frames} synthetic frames in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        ours_set = build_dataset(split_dir, input_size, train=True, seed=0)
        print(f"keypoint cache built in {time.perf_counter() - start:.2f} s (once per dataset, not timed below)")
        ours = make_loader(
            ours_set, batch_size=args.batch_size, seed=0, train=True, num_workers=args.workers
        )
        ours_rate = samples_per_s(ours, args.epochs, ours.sampler.set_epoch)

        naive = DataLoader(
            NaiveDataset(split_dir, input_size, seed=0),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )
        naive_rate = samples_per_s(naive, args.epochs, lambda epoch: None)

    print(
        f"loader at {input_size[0]}x{input_size[1]}, {args.workers} workers, batch {args.batch_size}, "
        f"{args.frames} frames x {args.epochs} epochs"
    )
    print(f"  ours (cached keypoints, uint8 albumentations): {ours_rate:8.1f} samples/s")
    print(f"  baseline (derive per sample, float64 numpy):   {naive_rate:8.1f} samples/s")
    print(f"  ratio: {ours_rate / naive_rate:.2f}x")


if __name__ == "__main__":
    main()
