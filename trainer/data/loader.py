"""The torch Dataset, the resumable sampler and the DataLoader factory.

A batch is a dict:
- ``image``: uint8 (B, 3, H, W), RGB. uint8 crosses the worker -> main process -> device path at
  a quarter of float32's bytes; the trainer converts to float (/ 255) on the device.
- ``keypoints``: float32 (B, 57, 3): x, y in input pixels (pixel centres at integers), state
  1 visible, 0 invisible, -1 unknown (x, y NaN). Heatmaps are built on the device by the loss.
- ``frame_id``: list of str (the ``NNNNN`` of the frame); ``index``: int64 (B,) dataset index.

Exact resume: the sampler's order is a pure function of (seed, epoch) and it can start at any
position of the epoch. The sampler yields (index, epoch) pairs, so each sample's augmentation
seed (seed, epoch, index) reaches the workers even when they are persistent and hold a stale
copy of the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer.data.cache import load_keypoints
from trainer.data.soccernet import NATIVE_SIZE, SplitData, read_split
from trainer.data.transforms import AugmentConfig, Size, TrainTransform, ValidTransform


class Transform(Protocol):
    def __call__(
        self, image: np.ndarray, keypoints: np.ndarray, *, epoch: int, index: int
    ) -> tuple[np.ndarray, np.ndarray]: ...


def decode_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3). A file that does not decode is an error that names the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise RuntimeError(f"cannot decode image {path}")
    return image


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) image as the network's (3, H, W) tensor: the one conversion training,
    validation and predict share, so predict sees exactly what validation saw."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class KeypointDataset(Dataset):
    """Frames of one split with their cached keypoints, transformed per (epoch, index).

    ``split`` keeps the annotations for the main process (the challenge metric needs them);
    ``__getitem__`` reads only numpy arrays, so forked workers do not touch (and copy, as
    reference counts change) the pages holding thousands of small annotation objects.
    """

    def __init__(self, split: SplitData, keypoints: np.ndarray, transform: Transform) -> None:
        if len(keypoints) != len(split.frames):
            raise ValueError(f"{len(keypoints)} keypoint sets for {len(split.frames)} frames")
        self.split = split
        self.image_paths = np.array([str(f.image_path) for f in split.frames])
        self.frame_ids = np.array([f.frame_id for f in split.frames])
        self.keypoints = keypoints
        self.transform = transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch used for plain integer indexing (the sampler passes its own epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, object]:
        index, epoch = item if isinstance(item, tuple) else (item, self.epoch)
        image, keypoints = self.transform(
            decode_image(Path(self.image_paths[index])), self.keypoints[index], epoch=epoch, index=index
        )
        return {
            "image": image_tensor(image),
            "keypoints": torch.from_numpy(keypoints),
            "frame_id": str(self.frame_ids[index]),
            "index": index,
        }


def build_dataset(
    split_dir: Path | str,
    input_size: Size,
    *,
    train: bool,
    seed: int = 0,
    augment: AugmentConfig = AugmentConfig(),
    source_size: Size = NATIVE_SIZE,
) -> KeypointDataset:
    """Read a split, take its keypoints from the cache (deriving what is missing), add transforms."""
    split = read_split(split_dir)
    keypoints, _ = load_keypoints(split, size=source_size)
    transform: Transform = (
        TrainTransform(input_size, seed=seed, source_size=source_size, config=augment)
        if train
        else ValidTransform(input_size, source_size=source_size)
    )
    return KeypointDataset(split, keypoints, transform)


class ResumableSampler(Sampler[tuple[int, int]]):
    """Epoch order as a pure function of (seed, epoch), startable at any position.

    ``start_index`` is a position in the epoch's common order: the samples all ranks together have
    consumed (steps x batch size x world size). With ``world_size`` > 1 each rank takes every
    world_size-th sample of the order from there, as DistributedSampler does, the order padded by
    wrapping round to its start so that ranks get equal counts (DDP steps in lockstep). Because
    the position is global, a resume is exact when the batch size changed between attempts, and
    it stays valid when the number of processes changed.
    """

    def __init__(
        self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_index = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        if not 0 <= start_index <= self.size:
            raise ValueError(f"start_index {start_index} is not in [0, {self.size}]")
        self.epoch = epoch
        self.start_index = start_index

    def order(self, epoch: int) -> np.ndarray:
        """The full order of dataset indices for ``epoch``, common to all ranks."""
        if self.shuffle:
            return np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(self.size)
        return np.arange(self.size)

    def _shard(self) -> np.ndarray:
        """This rank's indices from ``start_index`` on. The padding always wraps from the start of
        the order, so a run resumed at a multiple of the world size pads as the run never stopped."""
        remaining = self.size - self.start_index
        padded_end = self.start_index + -(-remaining // self.world_size) * self.world_size
        order = self.order(self.epoch)
        if padded_end > self.size:
            order = np.resize(order, padded_end)
        return order[self.start_index + self.rank : padded_end : self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self._shard():
            yield int(index), epoch

    def __len__(self) -> int:
        return -(-(self.size - self.start_index) // self.world_size)


def make_loader(
    dataset: KeypointDataset,
    *,
    batch_size: int,
    seed: int,
    train: bool,
    num_workers: int,
    device: torch.device | str = "cpu",
    epoch: int = 0,
    start_index: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader over ``dataset`` with a :class:`ResumableSampler` (``loader.sampler``).

    Train: shuffled, last partial batch dropped. Valid: in order, nothing dropped. Call
    ``loader.sampler.set_epoch(epoch, start_index)`` before each epoch. Workers persist across
    epochs (their start-up is seconds). They are forked and left alone: cv2.setNumThreads in a
    forked child hangs once the parent has used OpenCV's thread pool.
    """
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=train, rank=rank, world_size=world_size)
    sampler.set_epoch(epoch, start_index)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=train,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=num_workers > 0,
    )
