"""Data preparation for a job: the step the seed guide did by hand (download, unzip, link).

`python -m trainer prepare` runs it for the supervisor, which never imports the data stack
itself. Synthetic data is rendered into the root when absent; SoccerNet data is downloaded
and unpacked when incomplete; a `path` root must already hold the split folders. Then each
split's keypoints are derived into its cache, so training starts on a cache hit.

`cache_plan` says which of the files this leaves on disk a store's data cache can hold (the
SoccerNet zips, rendered synthetic frames, keypoint caches), under which dataset name, and which
this machine lacks. It lives here, beside the code that makes those files, because only the
trainer knows their places, versions and when a split is complete; the runner moves the bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from trainer.data.cache import CACHE_NAME, cache_is_current, load_keypoints, store_object_name
from trainer.data.download import EXPECTED_FRAMES, TASK, count_frames, ensure_soccernet
from trainer.data.soccernet import NATIVE_SIZE, read_split
from trainer.data.synthetic.generate import GENERATOR_VERSION, frame_paths, generate


@dataclass(frozen=True)
class CacheFile:
    """A file this preparation leaves on disk whose copy in a store's data cache saves making it.

    ``name`` is its key under the dataset's cache prefix; ``folder`` means ``path`` is a folder of
    frames, kept in the store as one archive of its files; ``needed``: this machine lacks it.
    """

    name: str
    path: Path
    needed: bool
    folder: bool = False


class DataNotFound(RuntimeError):
    """A `source: path` root without the split folders the spec names."""


def prepare(source: str, root: Path, train_split: str, valid_split: str, *,
            frames: int = 0, valid_frames: int = 0, seed: int = 0) -> dict[str, Path]:
    """Folders of the train and valid splits, ready to read."""
    root = Path(root)
    if source == "synthetic":
        dirs = {"train": root / train_split, "valid": root / valid_split}
        generate(dirs["train"], frames, seed)
        generate(dirs["valid"], valid_frames, seed, start_index=frames)  # frames train never saw
        return dirs
    if source == "soccernet":
        unknown = [s for s in (train_split, valid_split) if s not in EXPECTED_FRAMES]
        if unknown:
            raise ValueError(f"SoccerNet has no split {unknown[0]!r}; data.splits must name {', '.join(EXPECTED_FRAMES)}")
        found = ensure_soccernet(root, splits=(train_split, valid_split))
        return {"train": found[train_split], "valid": found[valid_split]}
    if source == "path":
        dirs = {"train": root / train_split, "valid": root / valid_split}
        missing = [str(d) for d in dirs.values() if not d.is_dir()]
        if missing:
            raise DataNotFound(
                f"data.source is 'path' but {', '.join(missing)} does not exist; point data.root at the "
                "folder that holds the split folders (data.splits), or use source: soccernet to download"
            )
        return dirs
    raise ValueError(f"unknown data source {source!r}")


def _keypoint_cache(name: str, split_dir: Path) -> CacheFile:
    path = split_dir / CACHE_NAME
    return CacheFile(f"{name}/{store_object_name()}", path, needed=not cache_is_current(path))


def _synthetic_complete(folder: Path, frames: int, start: int) -> bool:
    return all(p.exists() for i in range(start, start + frames) for p in frame_paths(folder, i))


def _listing_digest(dirs: dict[str, Path]) -> str:
    """Names and sizes of the split folders' files: which keypoint cache a `path` root can use.
    A near miss is harmless (the cache is keyed by each annotation's sha1), so contents are not read."""
    digest = hashlib.sha256()
    for role, folder in sorted(dirs.items()):
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and not entry.name.startswith("."):
                    digest.update(f"{role}\t{entry.name}\t{entry.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def cache_plan(source: str, root: Path, train_split: str, valid_split: str, *,
               frames: int = 0, valid_frames: int = 0, seed: int = 0) -> tuple[str, list[CacheFile]]:
    """(dataset name, files) that a store's data cache can provide for this preparation; changes nothing.

    SoccerNet: each split's zip (wanted while its folder is incomplete and no zip is here) and
    keypoint cache, named by task. Synthetic: each split's frames (rendering is slower than a
    download of them) and keypoint cache, named by generator version, frame counts and seed. A
    `path` root: its keypoint caches alone (the frames are the user's), named by the listing.
    """
    root = Path(root)
    if source == "soccernet":
        task_dir = root / TASK
        files = []
        for split in dict.fromkeys((train_split, valid_split)):
            if split not in EXPECTED_FRAMES:
                continue
            zip_path = task_dir / f"{split}.zip"
            incomplete = count_frames(task_dir / split) != EXPECTED_FRAMES[split]
            files.append(CacheFile(f"{split}.zip", zip_path, needed=incomplete and not zip_path.is_file()))
            files.append(_keypoint_cache(split, task_dir / split))
        return TASK, files
    dirs = {"train": root / train_split, "valid": root / valid_split}
    if source == "synthetic":
        name = f"synthetic-{GENERATOR_VERSION}-f{frames}-v{valid_frames}-s{seed}"
        ranges = {"train": (frames, 0), "valid": (valid_frames, frames)}
        files = []
        for role, folder in dirs.items():
            complete = _synthetic_complete(folder, *ranges[role])
            files.append(CacheFile(f"{role}.tar", folder, needed=not complete, folder=True))
            files.append(_keypoint_cache(role, folder))
        return name, files
    if source == "path":
        return f"path-{_listing_digest(dirs)}", [_keypoint_cache(role, d) for role, d in dirs.items() if d.is_dir()]
    raise ValueError(f"unknown data source {source!r}")


def prepare_keypoints(dirs: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Derive each split's keypoints into its cache now (a cache hit when restored): per split,
    frames and how many were derived here, which says whether the cache was used."""
    stats = {}
    for role, folder in dirs.items():
        _, loaded = load_keypoints(read_split(folder), size=NATIVE_SIZE)
        stats[role] = {"frames": loaded.reused + loaded.derived, "derived": loaded.derived}
    return stats
