"""Seconds a fresh session spends preparing SoccerNet data with the store's data cache, against
the same session without it, in the same run.

    python bench/prepare.py [--frames 2000]

The archives are SoccerNet-shaped (`calibration-2023/{train,valid}.zip`, 960x540 JPEG frames of
about 130 KB with their line annotations, 4:1 train/valid) and of realistic size: hundreds of MB.
Without the cache (the baseline): the zips are already on disk, as SoccerNet's downloader leaves
them, and the session checks and unpacks them and derives every frame's keypoints; the download
itself (10-20 min on Colab) is not counted, since SoccerNet's server cannot be reached here, so
the real gain is larger. With the cache: the session restores the zips and keypoint caches from a
local store (verifying each sha256), unpacks, and loads the keypoints (derived 0). Both call the
functions `python -m trainer prepare` runs, in this process (the real counts are fixed at
SoccerNet's 16,463 + 3,212 frames); the first session's one-time upload is shown apart.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.data_cache import DataCache, Plan, PlanFile  # noqa: E402
from runner.lease import LeaseHolder  # noqa: E402
from runner.store import Store  # noqa: E402
from trainer.data.download import TASK, ensure_soccernet  # noqa: E402
from trainer.data.prepare import cache_plan, prepare_keypoints  # noqa: E402
from trainer.data.synthetic.generate import frame_paths, generate  # noqa: E402

DISTINCT = 24  # rendered frames, repeated under every frame number: realistic bytes and annotations


def soccernet_zips(folder: Path, counts: dict[str, int]) -> int:
    """`folder/<split>.zip` as SoccerNet ships them (frames under `<split>/`); their total bytes."""
    pool = folder / "pool"
    generate(pool, DISTINCT, seed=0)
    index = 0
    for split, count in counts.items():
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as archive:
            for _ in range(count):
                image, annotation, _camera = frame_paths(pool, index % DISTINCT)
                archive.write(image, f"{split}/{index:05d}.jpg", zipfile.ZIP_STORED)
                archive.write(annotation, f"{split}/{index:05d}.json", zipfile.ZIP_DEFLATED)
                index += 1
    return sum((folder / f"{split}.zip").stat().st_size for split in counts)


def plan_of(root: Path) -> Plan:
    """What `python -m trainer prepare --plan` prints, from the same function."""
    name, files = cache_plan("soccernet", root, "train", "valid")
    return Plan(cache=name, files=[PlanFile(name=f.name, path=f.path, needed=f.needed, folder=f.folder) for f in files])


def unpack_and_derive(root: Path, counts: dict[str, int]) -> int:
    """What `trainer prepare` does once the zips are here; the frames whose keypoints it derived."""
    dirs = ensure_soccernet(root, tuple(counts), expected_frames=counts)
    return sum(split["derived"] for split in prepare_keypoints(dirs).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="train + valid frames (4:1)")
    args = parser.parse_args()
    counts = {"train": args.frames * 4 // 5, "valid": args.frames - args.frames * 4 // 5}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zip_bytes = soccernet_zips(tmp, counts)
        store = Store(str(tmp / "store"))
        holder = LeaseHolder(store.job("bench-prepare"), "bench", ttl_s=3600)
        holder.acquire(take_over=True)

        first = tmp / "first"
        plan = plan_of(first)
        cache = DataCache(store.data(plan.cache), "bench-prepare", "first")
        outcomes = cache.restore(plan)  # an empty cache: nothing restored
        (first / TASK).mkdir(parents=True)
        for split in counts:  # stands in for SoccerNet's download, not timed
            shutil.copyfile(tmp / f"{split}.zip", first / TASK / f"{split}.zip")
        began = time.perf_counter()
        derived_without = unpack_and_derive(first, counts)
        without_s = time.perf_counter() - began
        began = time.perf_counter()
        uploaded = cache.upload(outcomes, holder.check)
        upload_s = time.perf_counter() - began

        fresh = tmp / "fresh"
        began = time.perf_counter()
        plan = plan_of(fresh)
        restored = [o.file.name for o in DataCache(store.data(plan.cache), "bench-prepare", "fresh").restore(plan)
                    if o.restored]
        derived_with = unpack_and_derive(fresh, counts)
        with_s = time.perf_counter() - began
    assert len(uploaded) == 4 and len(restored) == 4 and derived_with == 0, (uploaded, restored, derived_with)
    print(f"data: {args.frames} frames ({counts['train']} train, {counts['valid']} valid), "
          f"zips {zip_bytes / 2**20:.0f} MiB")
    print(f"fresh session without the data cache: {without_s:.1f} s (check + unpack the zips, derive "
          f"{derived_without} frames' keypoints; the download is not counted) (baseline)")
    print(f"fresh session with the data cache: {with_s:.1f} s (restore {len(restored)} files from a local store, "
          f"unpack, keypoints derived {derived_with})")
    print(f"ratio with / without: {with_s / without_s:.2f} ({without_s / with_s:.1f}x faster)")
    print(f"first session's one-time upload to the cache: {upload_s:.1f} s")


if __name__ == "__main__":
    main()
