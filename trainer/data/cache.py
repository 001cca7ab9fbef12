"""The keypoint cache: derive the 57 keypoints once per dataset, so epochs only decode images.

One ``.npz`` file beside the frames maps the sha1 of each annotation file's bytes to its
keypoints. The file as a whole is valid for one ``KEYPOINTS_VERSION`` and one derivation size;
a frame whose annotation changed (new sha1) is derived again, the rest are reused. Keypoints are
derived at the native frame size and scaled to the input size by the transforms. Frames to derive
are spread over the CPUs (a process pool; each frame's keypoints are a pure function of its
annotation, so the cache is the same whatever the number of workers).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.files import atomic_write
from trainer.data.keypoints.derivation import KEYPOINTS_VERSION, derive_keypoints
from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.data.soccernet import NATIVE_SIZE, SplitData
from trainer.parallel import available_cpus, map_frames

log = logging.getLogger(__name__)

CACHE_NAME = ".keypoints-cache.npz"
MIN_FRAMES_PER_WORKER = 64
"""Below this many frames per process a pool costs more to start (each worker imports OpenCV,
SciPy and SoccerNet: about a second) than it saves at a few tens of ms a frame."""


@dataclass(frozen=True)
class CacheStats:
    """What a load did; ``derived`` is 0 when every frame came from the cache."""

    path: Path
    reused: int
    derived: int
    written: bool


def _read_cache(path: Path, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """sha1 -> keypoints from a cache file, or {} when it is absent, stale or unreadable."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            version = str(data["version"])
            cached_size = tuple(int(v) for v in data["size"])
            sha1s = data["sha1"]
            keypoints = data["keypoints"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
        log.warning("keypoint cache %s is unreadable (%s): rebuilding it", path, error)
        return {}
    if version != KEYPOINTS_VERSION or cached_size != size:
        log.info(
            "keypoint cache %s is for version %s at %s, need %s at %s: rebuilding it",
            path,
            version,
            cached_size,
            KEYPOINTS_VERSION,
            size,
        )
        return {}
    if keypoints.shape != (len(sha1s), NUM_KEYPOINTS, 3):
        log.warning("keypoint cache %s has keypoints of shape %s: rebuilding it", path, keypoints.shape)
        return {}
    return {str(sha1): kps for sha1, kps in zip(sha1s, keypoints)}


def store_object_name(size: tuple[int, int] = NATIVE_SIZE) -> str:
    """The name a store's data cache keeps this cache under: a new derivation version or size is
    a new object, so a session never restores a cache it would only derive again."""
    return f"keypoints-{KEYPOINTS_VERSION}-{size[0]}x{size[1]}.npz"


def cache_is_current(path: Path, size: tuple[int, int] = NATIVE_SIZE) -> bool:
    """Whether ``path`` is a cache of this version and size (its entries are not read): a session
    with one has nothing to gain from the store's copy."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["version"]) == KEYPOINTS_VERSION and tuple(int(v) for v in data["size"]) == size
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return False


def _write_cache(path: Path, sha1s: list[str], keypoints: np.ndarray, size: tuple[int, int]) -> bool:
    """Write atomically: readers never see half a cache.

    A read-only data folder is not an error: training goes on with the keypoints in memory.
    """
    arrays = {
        "version": np.array(KEYPOINTS_VERSION),
        "size": np.array(size, dtype=np.int64),
        "sha1": np.array(sha1s, dtype="U40"),
        "keypoints": keypoints.astype(np.float32, copy=False),
    }
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as error:
        log.warning("cannot write keypoint cache %s (%s): keypoints will be derived again next run", path, error)
        return False
    return True


def _derive(item: tuple[dict, int, int]) -> np.ndarray:
    """One frame's keypoints; module level so that pool workers can run it."""
    annotation, width, height = item
    return derive_keypoints(annotation, width, height)


def _derive_all(items: list[tuple[dict, int, int]], workers: int | None) -> list[np.ndarray]:
    """_derive over items, in order, over a process pool when there are enough frames."""
    return map_frames(_derive, items, workers, min_per_worker=MIN_FRAMES_PER_WORKER)


def load_keypoints(
    split: SplitData,
    *,
    size: tuple[int, int] = NATIVE_SIZE,
    cache_path: Path | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, CacheStats]:
    """Keypoints (N, 57, 3) float32 for ``split.frames`` in order, in pixels of a ``size`` image.

    Frames whose annotation is in the cache are reused; the others are derived, over ``workers``
    processes (default: every CPU this process may use; few frames are derived here), and the
    cache is rewritten, keeping only the current frames' entries.
    """
    path = cache_path if cache_path is not None else split.root / CACHE_NAME
    cached = _read_cache(path, size)
    width, height = size
    out = np.empty((len(split.frames), NUM_KEYPOINTS, 3), dtype=np.float32)
    missing = []
    for i, frame in enumerate(split.frames):
        hit = cached.get(frame.annotation_sha1)
        if hit is None:
            missing.append(i)
        else:
            out[i] = hit
    if missing:
        log.info(
            "deriving keypoints for %d frames in %s on up to %d processes",
            len(missing), split.root, workers or available_cpus(),
        )
        items = [(split.frames[i].annotation, width, height) for i in missing]
        for i, kps in zip(missing, _derive_all(items, workers)):
            out[i] = kps
    derived = len(missing)
    sha1s = [frame.annotation_sha1 for frame in split.frames]
    stale = set(cached) != set(sha1s)
    written = False
    if derived or stale:
        written = _write_cache(path, sha1s, out, size)
    if derived:
        log.info("derived keypoints for %d of %d frames in %s", derived, len(out), split.root)
    return out, CacheStats(path=path, reused=len(out) - derived, derived=derived, written=written)
