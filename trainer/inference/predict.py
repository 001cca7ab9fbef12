"""``python -m trainer predict``: keypoints, cameras and overlays for images, folders and videos.

A frame takes the path a validation frame takes, part for part: decoded to RGB
(``decode_image``), resized by ``ValidTransform`` to the input size the weights were trained
at, scaled by ``network_input``, run under autocast on CUDA, turned into probabilities by
``ToProbabilities`` and into keypoints by ``keypoints_from_heatmaps``; the camera is
``estimate_camera`` with the default confidence bar. So ``predict`` on annotated frames followed
by ``score`` gives the EvalAI figure validation logged for the same weights
(tests/e2e/test_predict.py checks it).

Frames go through in chunks: the network takes them in batches, then the chunk's cameras are
estimated in a process pool (tens of milliseconds a frame on one core, more than the network
costs on a GPU), then files and overlays are written. Only a chunk of frames is held in memory, so a long
video streams through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch

from contract.files import atomic_write
from trainer.data.loader import image_tensor
from trainer.data.transforms import ValidTransform
from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE
from trainer.evaluation.heatmaps import keypoints_from_heatmaps
from trainer.parallel import MIN_FRAMES_PER_WORKER, available_cpus, map_frames
from trainer.inference.frames import DEFAULT_FPS, Frame, expand, frame_name, read_frames, unique
from trainer.inference.outputs import camera_for, write_frame
from trainer.inference.overlay import draw_overlay
from trainer.inference.weights import WeightsMeta, load_network
from trainer.model.heads import KeypointNet
from trainer.model.metamodel import ToProbabilities, network_input

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_MAX_CHUNK = 256
"""Frames held at once: 256 at 960×540 is about 400 MB of images."""
_NO_KEYPOINTS = np.zeros((0, 3), dtype=np.float32)
"""``ValidTransform`` moves keypoints with the image; at inference there are none to move."""


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def resolve_device(choice: str) -> torch.device:
    """``auto`` is CUDA when there is a device, else the CPU; ``cuda`` without one is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is visible")
    return torch.device(choice)


class Predictor:
    """A network and how to feed it: the weights' input size and stride, on a device, AMP on CUDA."""

    def __init__(self, net: KeypointNet, meta: WeightsMeta, device: torch.device) -> None:
        self.net = net.to(device).eval()
        self.input_size = tuple(meta.input_size)
        self.stride = meta.stride
        self.device = device
        self.amp = device.type == "cuda"
        self.transform = ValidTransform(self.input_size)
        self.probabilities = ToProbabilities()

    def keypoints(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(57, 3) x, y in pixels of each RGB image, and confidence."""
        batch = torch.stack([image_tensor(self.transform(image, _NO_KEYPOINTS)[0]) for image in images])
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp):
            logits = self.net(network_input(batch, self.device))
        probabilities = self.probabilities(logits).cpu()
        return [
            keypoints_from_heatmaps(probabilities[row:row + 1], self.stride, self.input_size,
                                    (image.shape[1], image.shape[0]))[0]
            for row, image in enumerate(images)
        ]


@dataclass
class Summary:
    """What a run did, for its one summary line."""

    device: str
    min_confidence: float
    frames: int = 0
    skipped: int = 0
    cameras: int = 0
    usable_points: int = 0
    usable_confidence: float = 0.0
    seconds: float = 0.0

    def add(self, keypoints: np.ndarray, camera: dict | None) -> None:
        self.frames += 1
        self.cameras += camera is not None
        usable = keypoints[:, 2] >= self.min_confidence
        self.usable_points += int(usable.sum())
        self.usable_confidence += float(keypoints[usable, 2].sum())

    def skip(self, line: str) -> None:
        self.skipped += 1
        log.warning("skipped %s", line)

    def line(self) -> str:
        """Frames, skipped inputs, cameras, mean confidence of the keypoints a camera may use, frames/s."""
        per_frame = self.usable_points / self.frames if self.frames else 0.0
        confidence = (f"mean confidence {self.usable_confidence / self.usable_points:.3f} over {per_frame:.1f} "
                      f"keypoints a frame at >= {self.min_confidence:g}" if self.usable_points
                      else f"no keypoint at confidence >= {self.min_confidence:g}")
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.frames} frames ({self.skipped} inputs skipped), {self.cameras} with a camera, {confidence}, "
                f"{rate:.1f} frames/s on {self.device}")


class VideoOverlays:
    """One annotated video per input video (``STEM.overlay.mp4``, mp4v), written as its frames arrive.

    Inputs are read one after the other, so a frame of another video means the last one is complete.
    """

    def __init__(self, out: Path, every: int) -> None:
        self.out = out
        self.every = every
        self.source: Path | None = None
        self.writer: cv2.VideoWriter | None = None
        self.taken: set[str] = set()

    def write(self, frame: Frame, canvas: np.ndarray) -> None:
        if self.writer is None or frame.source.path != self.source:
            self.close()
            self.source = frame.source.path
            target = self.out / f"{unique(frame_name(self.source.stem), self.taken)}.overlay.mp4"
            fps = (frame.fps or DEFAULT_FPS) / self.every
            self.writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, frame.size)
        self.writer.write(canvas)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def _write_outputs(out: Path, frame: Frame, keypoints: np.ndarray, camera: dict | None, reason: str | None,
                   overlay: bool, videos: VideoOverlays) -> None:
    width, height = frame.size
    record = {"source": str(frame.source.path), "index": frame.index, "width": width, "height": height}
    write_frame(out, frame.name, record, keypoints, camera, reason)
    if overlay:
        canvas = draw_overlay(frame.image, keypoints, camera, reason, DEFAULT_MIN_CONFIDENCE)
        _, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        atomic_write(out / f"{frame.name}.overlay.jpg", jpeg.tobytes())
        if frame.source.video:
            videos.write(frame, canvas)


def predict(weights: Path, inputs: Sequence[Path], out: Path, *, every: int = 1, overlay: bool = False,
            batch_size: int | None = None, device: str = "auto", workers: int | None = None,
            legacy: WeightsMeta | None = None) -> Summary:
    """Predict on every frame of ``inputs`` into ``out``; the summary counts frames, skips and cameras.

    ``batch_size`` defaults to validation's (from the weights). Raises WeightsError when the
    weights cannot be used and ValueError for a bad option; a bad input is skipped (logged,
    counted), never raised.
    """
    if every < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"--every and --batch-size must be at least 1 (got {every} and {batch_size})")
    torch_device = resolve_device(device)
    net, meta = load_network(weights, legacy)
    batch_size = batch_size or meta.batch_size
    if torch_device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one input size throughout: let cuDNN pick its kernels once
    predictor = Predictor(net, meta, torch_device)
    evalai = meta.metrics.get("val_evalai")
    log.info("weights %s: %s at %dx%d, step %d, %d epochs%s", weights, meta.arch, *meta.input_size, meta.step,
             meta.epochs, "" if evalai is None else f", val_evalai {evalai:.4g}")
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(device=torch_device.type, min_confidence=DEFAULT_MIN_CONFIDENCE)
    videos = VideoOverlays(out, every)
    wanted = min(_MAX_CHUNK, MIN_FRAMES_PER_WORKER * (workers or available_cpus()))  # every CPU a camera worker
    chunk_size = batch_size * max(1, wanted // batch_size)  # whole batches: validation's, however frames are chunked
    start = time.perf_counter()
    try:
        for chunk in _chunks(read_frames(expand(inputs, summary.skip), every, summary.skip), chunk_size):
            keypoints: list[np.ndarray] = []
            for batch in _chunks(chunk, batch_size):
                keypoints += predictor.keypoints([frame.image for frame in batch])
            jobs = [(kps, *frame.size, DEFAULT_MIN_CONFIDENCE) for frame, kps in zip(chunk, keypoints)]
            for frame, kps, (camera, reason) in zip(chunk, keypoints, map_frames(camera_for, jobs, workers)):
                _write_outputs(out, frame, kps, camera, reason, overlay, videos)
                summary.add(kps, camera)
    finally:
        videos.close()
    summary.seconds = time.perf_counter() - start
    return summary
