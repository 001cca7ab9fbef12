"""The dataset and the loader factory on frames on disk, with and without worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.data.loader import KeypointDataset, build_dataset, decode_image, make_loader
from trainer.data.synthetic.generate import generate

FRAMES = 6
INPUT = (320, 180)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    generate(folder, frames=FRAMES, seed=11)
    return folder


@pytest.fixture(scope="module")
def train_set(split_dir: Path) -> KeypointDataset:
    return build_dataset(split_dir, INPUT, train=True, seed=3)


def _batches(loader) -> list[dict]:
    return list(loader)


def test_batch_shapes_and_dtypes(train_set: KeypointDataset) -> None:
    loader = make_loader(train_set, batch_size=4, seed=3, train=True, num_workers=0)
    (batch,) = _batches(loader)  # 6 frames, batch 4, last partial batch dropped
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 3, INPUT[1], INPUT[0])
    assert batch["keypoints"].dtype == torch.float32 and batch["keypoints"].shape == (4, 57, 3)
    assert set(torch.unique(batch["keypoints"][..., 2]).tolist()) <= {-1.0, 0.0, 1.0}
    assert (batch["keypoints"][..., 2] == 1).any()
    assert isinstance(batch["frame_id"], list) and all(len(f) == 5 and f.isdigit() for f in batch["frame_id"])
    assert batch["index"].dtype == torch.int64
    assert not loader.pin_memory


def test_validation_loader_keeps_order_and_every_frame(split_dir: Path) -> None:
    valid = build_dataset(split_dir, INPUT, train=False)
    batches = _batches(make_loader(valid, batch_size=4, seed=0, train=False, num_workers=0))
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(FRAMES))
    assert batches[0]["frame_id"] == ["00000", "00001", "00002", "00003"]


def test_resumed_loader_gives_the_same_batches_as_the_uninterrupted_one(train_set: KeypointDataset) -> None:
    full = _batches(make_loader(train_set, batch_size=2, seed=3, train=True, num_workers=0, epoch=5))
    resumed = _batches(make_loader(train_set, batch_size=2, seed=3, train=True, num_workers=0, epoch=5, start_index=2))
    assert len(full) == 3 and len(resumed) == 2
    for a, b in zip(full[1:], resumed):
        assert a["frame_id"] == b["frame_id"]
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["keypoints"].nan_to_num(-7), b["keypoints"].nan_to_num(-7))


def test_workers_give_the_same_batches_as_the_main_process(train_set: KeypointDataset) -> None:
    """Persistent workers hold a copy of the dataset: the epoch must reach them via the sampler."""
    main = make_loader(train_set, batch_size=2, seed=3, train=True, num_workers=0)
    workers = make_loader(train_set, batch_size=2, seed=3, train=True, num_workers=2)
    assert workers.persistent_workers
    for epoch in (0, 1):
        main.sampler.set_epoch(epoch)
        workers.sampler.set_epoch(epoch)
        for a, b in zip(_batches(main), _batches(workers), strict=True):
            assert a["frame_id"] == b["frame_id"]
            assert torch.equal(a["image"], b["image"])
    train_set.set_epoch(0)
    workers.sampler.set_epoch(1)
    batch = _batches(workers)[0]
    for image, index in zip(batch["image"], batch["index"].tolist()):
        path = Path(train_set.image_paths[index])
        expected, _ = train_set.transform(decode_image(path), train_set.keypoints[index], epoch=1, index=index)
        assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))


def test_dataset_epoch_drives_plain_indexing(train_set: KeypointDataset) -> None:
    train_set.set_epoch(0)
    a = train_set[1]["image"]
    assert torch.equal(a, train_set[(1, 0)]["image"])
    train_set.set_epoch(9)
    assert torch.equal(train_set[1]["image"], train_set[(1, 9)]["image"])
    train_set.set_epoch(0)
    assert np.array_equal(a.numpy(), train_set[1]["image"].numpy())
