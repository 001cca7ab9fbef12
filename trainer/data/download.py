"""SoccerNet camera-calibration splits: download through the SoccerNet package and unpack them.

The download goes through the SoccerNet package (``calibration-2023`` task on the Hugging Face
Hub), which swallows network errors when its target folder already holds files; so success is
judged by what is on disk afterwards, never by the downloader returning.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from trainer.data.soccernet import FRAME_JPG, NATIVE_SIZE

log = logging.getLogger(__name__)

TASK = "calibration-2023"
EXPECTED_FRAMES: Mapping[str, int] = {"train": 16_463, "valid": 3_212, "test": 3_141}


class DownloadError(RuntimeError):
    """The SoccerNet data could not be fetched or is not what was expected."""


Fetch = Callable[[Path, Sequence[str]], None]


def soccernet_fetch(root: Path, splits: Sequence[str]) -> None:
    """Ask the SoccerNet package for ``root/calibration-2023/<split>.zip``."""
    from SoccerNet.Downloader import SoccerNetDownloader

    SoccerNetDownloader(LocalDirectory=str(root)).downloadDataTask(task=TASK, split=list(splits))


def count_frames(split_dir: Path) -> int:
    if not split_dir.is_dir():
        return 0
    return sum(1 for p in split_dir.iterdir() if FRAME_JPG.match(p.name))


def zip_problem(zip_path: Path) -> str | None:
    """Why the zip is unusable (truncated, corrupt, a bad CRC), or None when it is sound."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return None if bad is None else f"bad CRC in member {bad}"


def _frame_prefix(names: Iterable[str], split: str) -> str:
    """The folder inside the zip that holds the frames: '' or e.g. 'train/' (handle both)."""
    frame_dirs = {name.rpartition("/")[0] for name in names if FRAME_JPG.match(name.rpartition("/")[2])}
    if len(frame_dirs) != 1:
        raise DownloadError(
            f"{split}.zip: expected the frames in one folder, found them in {sorted(frame_dirs) or 'none'}"
        )
    prefix = frame_dirs.pop()
    return f"{prefix}/" if prefix else ""


def _extract(zip_path: Path, split: str, target: Path) -> None:
    """Unpack into a temporary sibling, then rename: a killed unzip never looks complete.

    Dot-files already in the target are carried over: the zip never holds one (they are skipped
    below), and the keypoint cache restored from a store's data cache is one.
    """
    staging = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if target.is_dir():
        for kept in target.glob(".*"):
            if kept.is_file():
                kept.replace(staging / kept.name)
    with zipfile.ZipFile(zip_path) as archive:
        prefix = _frame_prefix(archive.namelist(), split)
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            relative = info.filename[len(prefix) :]
            if "/" in relative or relative.startswith("."):
                continue
            with archive.open(info) as src, (staging / relative).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _wrong_sizes(split_dir: Path, expected_size: tuple[int, int]) -> list[str]:
    from PIL import Image

    wrong = []
    for path in sorted(split_dir.glob("*.jpg")):
        with Image.open(path) as image:
            if image.size != expected_size:
                wrong.append(f"{path.name} {image.size[0]}x{image.size[1]}")
    return wrong


_NETWORK_ERRORS = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "TimeoutException",
        "ReadTimeout",
        "ProxyError",
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "URLError",
        "gaierror",
        "ConnectionError",
        "TimeoutError",
    }
)


def _is_network_error(error: BaseException) -> bool:
    """Whether the error chain says the hub was not reached (matched by class name: the
    downloader's HTTP stack and its exception types vary between huggingface_hub versions)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in _NETWORK_ERRORS for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _download_error(splits: Sequence[str], task_dir: Path, cause: str, *, offline: bool) -> DownloadError:
    why = (
        "the Hugging Face Hub could not be reached, so this machine looks offline or the hub is unreachable"
        if offline
        else "the SoccerNet downloader failed"
    )
    return DownloadError(
        f"Downloading SoccerNet {TASK} split(s) {', '.join(splits)} into {task_dir} failed: {why} "
        f"({cause}). To train without downloading, put a copy of the extracted splits (folders of "
        f"NNNNN.jpg + NNNNN.json) on this machine and set `data.source: path` with `data.root` "
        f"pointing at the folder that holds them; or place {', '.join(f'{s}.zip' for s in splits)} "
        f"in {task_dir} and run again."
    )


def _download(fetch: Fetch, root: Path, splits: Sequence[str]) -> None:
    task_dir = root / TASK
    try:
        fetch(root, splits)
    except Exception as error:  # noqa: BLE001 - the downloader raises anything from OSError to PermissionError
        cause = f"{type(error).__name__}: {error}"
        raise _download_error(splits, task_dir, cause, offline=_is_network_error(error)) from error
    missing = [s for s in splits if not (task_dir / f"{s}.zip").is_file()]
    if missing:
        raise _download_error(
            missing,
            task_dir,
            "the SoccerNet downloader returned without the zip: it only logs a network error when "
            "its folder already holds files",
            offline=True,
        )


def ensure_soccernet(
    root: Path | str,
    splits: Sequence[str] = ("train", "valid", "test"),
    *,
    expected_frames: Mapping[str, int] = EXPECTED_FRAMES,
    expected_size: tuple[int, int] | None = NATIVE_SIZE,
    fetch: Fetch = soccernet_fetch,
) -> dict[str, Path]:
    """Make ``root/calibration-2023/<split>/`` complete for each split; return those folders.

    A folder with the expected frame count is taken as is (no download, no unzip). Otherwise a
    zip already present is checked and unpacked; a corrupt one is deleted and fetched again,
    once. ``fetch`` is the network boundary (the SoccerNet downloader by default).
    """
    root = Path(root)
    task_dir = root / TASK
    dirs = {split: task_dir / split for split in splits}
    todo = [s for s in splits if count_frames(dirs[s]) != expected_frames[s]]
    if not todo:
        return dirs

    # Each zip's CRCs are read once (a full read of a multi-GB file): sound ones go to `checked`.
    checked: set[str] = set()
    refetched: set[str] = set()
    for split in todo:
        zip_path = task_dir / f"{split}.zip"
        if not zip_path.is_file():
            continue
        if problem := zip_problem(zip_path):
            log.warning("%s is unusable (%s): deleting it and downloading it again", zip_path, problem)
            zip_path.unlink()
            refetched.add(split)
        else:
            checked.add(split)
    absent = [s for s in todo if s not in checked]
    if absent:
        log.info("downloading SoccerNet %s split(s) %s into %s", TASK, ", ".join(absent), task_dir)
        _download(fetch, root, absent)

    for split in todo:
        zip_path = task_dir / f"{split}.zip"
        if split not in checked and (problem := zip_problem(zip_path)):
            if split in refetched:
                raise DownloadError(f"{zip_path} is still unusable after downloading it again: {problem}")
            log.warning("downloaded %s is unusable (%s): downloading it once more", zip_path, problem)
            zip_path.unlink()
            _download(fetch, root, [split])
            if problem := zip_problem(zip_path):
                raise DownloadError(f"{zip_path} is still unusable after downloading it again: {problem}")
        log.info("unpacking %s", zip_path)
        _extract(zip_path, split, dirs[split])
        found = count_frames(dirs[split])
        if found != expected_frames[split]:
            raise DownloadError(
                f"{zip_path} unpacked to {found} frames in {dirs[split]}, expected {expected_frames[split]}"
            )
        if expected_size is not None and (wrong := _wrong_sizes(dirs[split], expected_size)):
            raise DownloadError(
                f"{len(wrong)} frame(s) in {dirs[split]} are not {expected_size[0]}x{expected_size[1]}: "
                f"{', '.join(wrong[:5])}"
            )
    return dirs
