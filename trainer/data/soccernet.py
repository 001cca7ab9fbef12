"""SoccerNet camera-calibration frames: read a split folder.

A split folder holds ``NNNNN.jpg`` with ``NNNNN.json`` (line class -> list of ``{"x", "y"}``
normalised to [0, 1]). The reader never crashes on bad data and never drops it silently: every
skipped frame or line is counted per reason in a :class:`SkipReport`, logged once per split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from SoccerNet.Evaluation.utils_calibration import SoccerPitch

log = logging.getLogger(__name__)

NATIVE_SIZE = (960, 540)
LINE_CLASSES = frozenset(SoccerPitch.lines_classes)
POINT_RANGE = (-0.1, 1.1)

_FRAME_JSON = re.compile(r"^(\d+)\.json$")
FRAME_JPG = re.compile(r"^(\d+)\.jpg$")
"""A frame's image name; the downloader counts frames by it."""
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
        elif match := FRAME_JPG.match(path.name):
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
