"""SoccerNet camera-calibration frames: read a split folder, and download + unpack the splits.

A split folder holds ``NNNNN.jpg`` with ``NNNNN.json`` (line class -> list of ``{"x", "y"}``
normalised to [0, 1]). The reader never crashes on bad data and never drops it silently: every
skipped frame or line is counted per reason in a :class:`SkipReport`, logged once per split.

The download goes through the SoccerNet package (``calibration-2023`` task on the Hugging Face
Hub), which swallows network errors when its target folder already holds files; so success is
judged by what is on disk afterwards, never by the downloader returning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from SoccerNet.Evaluation.utils_calibration import SoccerPitch

log = logging.getLogger(__name__)

TASK = "calibration-2023"
EXPECTED_FRAMES: Mapping[str, int] = {"train": 16_463, "valid": 3_212, "test": 3_141}
NATIVE_SIZE = (960, 540)
LINE_CLASSES = frozenset(SoccerPitch.lines_classes)
POINT_RANGE = (-0.1, 1.1)

_FRAME_JSON = re.compile(r"^(\d+)\.json$")
_FRAME_JPG = re.compile(r"^(\d+)\.jpg$")
_JPEG_MAGIC = b"\xff\xd8\xff"

Annotation = dict[str, list[dict[str, float]]]


class SkipReason:
    """Why a frame or a line was left out; the strings are what tests and logs see."""

    UNREADABLE_JSON = "unreadable json"
    CORRUPT_JSON = "corrupt json"
    MISSING_IMAGE = "missing image"
    UNREADABLE_IMAGE = "unreadable image"
    MISSING_ANNOTATION = "missing annotation"
    UNKNOWN_LINE_CLASS = "unknown line class"
    MALFORMED_LINE = "malformed line"
    POINT_OUT_OF_RANGE = "point out of range or NaN"


FRAME_REASONS = frozenset(
    {
        SkipReason.UNREADABLE_JSON,
        SkipReason.CORRUPT_JSON,
        SkipReason.MISSING_IMAGE,
        SkipReason.UNREADABLE_IMAGE,
        SkipReason.MISSING_ANNOTATION,
    }
)


@dataclass
class SkipReport:
    """Counts of skipped frames/lines per reason, with the first few file names as examples.

    Frame reasons count frames; line reasons count lines (their frame is kept).
    """

    max_examples: int = 5
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        self.counts[reason] += 1
        names = self.examples.setdefault(reason, [])
        if len(names) < self.max_examples:
            names.append(name)

    @property
    def frames_skipped(self) -> int:
        return sum(n for reason, n in self.counts.items() if reason in FRAME_REASONS)

    @property
    def lines_skipped(self) -> int:
        return sum(n for reason, n in self.counts.items() if reason not in FRAME_REASONS)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        parts = []
        for reason in sorted(self.counts):
            unit = "frame(s)" if reason in FRAME_REASONS else "line(s)"
            shown = ", ".join(self.examples[reason])
            more = " ..." if self.counts[reason] > len(self.examples[reason]) else ""
            parts.append(f"{reason}: {self.counts[reason]} {unit} (e.g. {shown}{more})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Frame:
    """One usable frame. ``annotation_sha1`` keys the keypoint cache to the exact JSON bytes."""

    frame_id: str
    image_path: Path
    annotation: Annotation
    annotation_sha1: str


@dataclass(frozen=True)
class SplitData:
    root: Path
    frames: list[Frame]
    skipped: SkipReport

    def __len__(self) -> int:
        return len(self.frames)


def _clean_line(points: object) -> tuple[list[dict[str, float]] | None, str | None]:
    """The line's points as floats, or the reason the whole line is unusable."""
    if not isinstance(points, list):
        return None, SkipReason.MALFORMED_LINE
    low, high = POINT_RANGE
    clean = []
    for point in points:
        if not isinstance(point, dict):
            return None, SkipReason.MALFORMED_LINE
        try:
            x, y = float(point["x"]), float(point["y"])
        except (KeyError, TypeError, ValueError):
            return None, SkipReason.MALFORMED_LINE
        if not (low <= x <= high and low <= y <= high):  # also False for NaN
            return None, SkipReason.POINT_OUT_OF_RANGE
        clean.append({"x": x, "y": y})
    return clean, None


def _clean_annotation(raw: dict, name: str, report: SkipReport) -> Annotation:
    annotation: Annotation = {}
    for line_class, points in raw.items():
        if line_class not in LINE_CLASSES:
            report.add(SkipReason.UNKNOWN_LINE_CLASS, f"{name}: {line_class!r}")
            continue
        clean, reason = _clean_line(points)
        if reason is not None:
            report.add(reason, f"{name}: {line_class!r}")
            continue
        annotation[line_class] = clean
    return annotation


def _image_readable(path: Path) -> bool:
    """A cheap header check: decoding every image up front would cost minutes on the full set."""
    try:
        with path.open("rb") as f:
            return f.read(3) == _JPEG_MAGIC
    except OSError:
        return False


def read_frame(annotation_path: Path, report: SkipReport) -> Frame | None:
    """One frame from its JSON path, or None with the reason added to ``report``."""
    name = annotation_path.name
    image_path = annotation_path.with_suffix(".jpg")
    try:
        data = annotation_path.read_bytes()
    except OSError:
        report.add(SkipReason.UNREADABLE_JSON, name)
        return None
    try:
        raw = json.loads(data)  # NaN/Infinity parse; the range check drops their line
    except (ValueError, UnicodeDecodeError):
        report.add(SkipReason.CORRUPT_JSON, name)
        return None
    if not isinstance(raw, dict):
        report.add(SkipReason.CORRUPT_JSON, name)
        return None
    if not image_path.is_file():
        report.add(SkipReason.MISSING_IMAGE, name)
        return None
    if not _image_readable(image_path):
        report.add(SkipReason.UNREADABLE_IMAGE, image_path.name)
        return None
    return Frame(
        frame_id=annotation_path.stem,
        image_path=image_path,
        annotation=_clean_annotation(raw, name, report),
        annotation_sha1=hashlib.sha1(data).hexdigest(),
    )


def read_split(split_dir: Path | str, *, max_examples: int = 5) -> SplitData:
    """All usable frames of a split folder, in frame-number order, and what was skipped.

    Only ``NNNNN.json`` files are frames: ``match_info.json``, ``per_match_info.json`` and the
    synthetic generator's ``NNNNN.camera.json`` are not. Skips are logged as one warning.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")
    report = SkipReport(max_examples=max_examples)
    jsons: dict[str, Path] = {}
    jpgs: set[str] = set()
    for path in split_dir.iterdir():
        if match := _FRAME_JSON.match(path.name):
            jsons[match.group(1)] = path
        elif match := _FRAME_JPG.match(path.name):
            jpgs.add(match.group(1))
    frames = []
    for stem in sorted(jsons, key=lambda s: (int(s), s)):
        frame = read_frame(jsons[stem], report)
        if frame is not None:
            frames.append(frame)
    for stem in sorted(jpgs - jsons.keys(), key=lambda s: (int(s), s)):
        report.add(SkipReason.MISSING_ANNOTATION, f"{stem}.jpg")
    if report:
        log.warning(
            "%s: %d frames read, %d frame(s) and %d line(s) skipped: %s",
            split_dir,
            len(frames),
            report.frames_skipped,
            report.lines_skipped,
            report.summary(),
        )
    return SplitData(root=split_dir, frames=frames, skipped=report)


# --- download ---------------------------------------------------------------------------------


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
    return sum(1 for p in split_dir.iterdir() if _FRAME_JPG.match(p.name))


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
    frame_dirs = {name.rpartition("/")[0] for name in names if _FRAME_JPG.match(name.rpartition("/")[2])}
    if len(frame_dirs) != 1:
        raise DownloadError(
            f"{split}.zip: expected the frames in one folder, found them in {sorted(frame_dirs) or 'none'}"
        )
    prefix = frame_dirs.pop()
    return f"{prefix}/" if prefix else ""


def _extract(zip_path: Path, split: str, target: Path) -> None:
    """Unpack into a temporary sibling, then rename: a killed unzip never looks complete."""
    staging = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
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
