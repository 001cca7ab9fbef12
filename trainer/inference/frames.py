"""What ``predict`` reads: image files, folders of images and videos, as named RGB frames.

Bad inputs never stop a run: a path that is not there, an image that does not decode, a video
that does not open or yields no frame is reported in one line naming the file (through the
``skip`` callback) and the rest is processed. Frames are decoded as training decodes them (RGB,
``decode_image``), so a frame predicted on is the frame validation saw.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainer.data.loader import decode_image

# OpenCV reads this when it first opens a video: an unreadable one is reported here once, in our
# words, instead of FFmpeg's lines on stderr as well.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
DEFAULT_FPS = 25.0
"""A video's rate when its container does not say (OpenCV reports 0)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

Skip = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """One input: an image file or a video file."""

    path: Path
    video: bool


@dataclass
class Frame:
    """One frame to predict on. ``index`` is its number in a video (None for an image)."""

    name: str
    image: np.ndarray  # RGB uint8 (H, W, 3)
    source: Source
    index: int | None = None
    fps: float | None = None  # the video's frame rate, for the annotated video

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.image.shape[:2]
        return width, height


def frame_name(stem: str, index: int | None = None) -> str:
    """A name safe as part of a file name: letters, digits, ``_`` and ``-`` (what ``calibrate`` accepts).

    An image keeps its stem, so ``00012.jpg`` gives ``camera_00012.json``, the name ``score``
    pairs with the annotation ``00012.json``; a video frame is ``STEM_NNNNNN``.
    """
    name = _UNSAFE.sub("_", stem) or "frame"
    return name if index is None else f"{name}_{index:06d}"


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when an earlier input already had it; records it as taken."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def expand(paths: Iterable[Path], skip: Skip) -> list[Source]:
    """Each path as sources: a folder gives its images in name order; a file is a video by its suffix, else an image."""
    sources: list[Source] = []
    for path in map(Path, paths):
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not images:
                skip(f"{path}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            sources += [Source(p, video=False) for p in images]
        elif path.is_file():
            sources.append(Source(path, video=path.suffix.lower() in VIDEO_SUFFIXES))
        else:
            skip(f"{path}: no such file or folder")
    return sources


def _video_frames(source: Source, every: int, skip: Skip, taken: set[str]) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(source.path))
    if not capture.isOpened():
        skip(f"{source.path}: the video does not open (not a video, or a codec OpenCV lacks)")
        return
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    index = produced = 0
    try:
        while True:
            if index % every:
                if not capture.grab():  # skipped frames are not decoded
                    break
            else:
                ok, bgr = capture.read()
                if not ok:
                    break
                produced += 1
                name = unique(frame_name(source.path.stem, index), taken)
                yield Frame(name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source, index, fps)
            index += 1
    finally:
        capture.release()
    if not produced:
        skip(f"{source.path}: the video opens but no frame could be read")


def read_frames(sources: Iterable[Source], every: int, skip: Skip) -> Iterator[Frame]:
    """The frames of ``sources`` in order: each image, every ``every``-th frame of each video."""
    taken: set[str] = set()
    for source in sources:
        if source.video:
            yield from _video_frames(source, every, skip, taken)
            continue
        try:
            image = decode_image(source.path)
        except RuntimeError:
            skip(f"{source.path}: the image does not decode")
            continue
        yield Frame(unique(frame_name(source.path.stem), taken), image, source)
