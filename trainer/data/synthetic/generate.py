"""Writing synthetic SoccerNet-format frames: ``NNNNN.jpg``, ``NNNNN.json``, ``NNNNN.camera.json``.

Frame i is a pure function of (seed, i), so any subset can be made independently (in parallel, or
resumed after a kill) and comes out the same; each file is written atomically, so a file that
exists is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from contract.files import atomic_write
from trainer.data.synthetic.annotate import annotate
from trainer.data.synthetic.camera import View, sample_camera
from trainer.data.synthetic.render import render_view

# Names the frames a (seed, index) gives: a store's data cache keeps rendered frames under it, so
# bump it with any change that alters them, or sessions restore frames this code would not render.
GENERATOR_VERSION = "gen1"
_MIN_LINE_CLASSES = 3
_CAMERA_TRIES = 20


def render_frame(
    rng: np.random.Generator,
    width: int = 960,
    height: int = 540,
    *,
    click_noise: float = 0.0,
    distortion: float = 0.0,
) -> tuple[np.ndarray, dict, dict]:
    """One synthetic frame from a random broadcast camera: (BGR image, annotation, camera JSON).

    ``click_noise`` (px) scatters the clicks more, like a hurried annotator; ``distortion`` is the
    lens's radial k1 (SoccerNet's first ``radial_distortion`` term, in the camera JSON), which bends
    both the drawn and the clicked lines. Real annotations have both; with both 0 the frame is the
    same as before the options existed. Cameras that would show fewer than three lines are redrawn
    from the same generator, so the result stays a function of the generator's state.
    """
    for _ in range(_CAMERA_TRIES):
        camera_json = sample_camera(rng, width, height)
        if distortion:
            camera_json["radial_distortion"] = [float(distortion)] + [0.0] * 5
        view = View.from_json(camera_json, width, height)
        if len(annotate(view, np.random.default_rng(0))) >= _MIN_LINE_CLASSES:
            break
    image, annotation = render_view(camera_json, rng, width, height, click_noise)
    return image, annotation, camera_json


def frame_paths(out_dir: Path, index: int) -> tuple[Path, Path, Path]:
    """(image, annotation, camera) paths of frame `index`, named like SoccerNet's 5-digit frames."""
    stem = f"{index:05d}"
    return out_dir / f"{stem}.jpg", out_dir / f"{stem}.json", out_dir / f"{stem}.camera.json"


def generate(
    out_dir: Path,
    frames: int,
    seed: int,
    width: int = 960,
    height: int = 540,
    start_index: int = 0,
    *,
    click_noise: float = 0.0,
    distortion: float = 0.0,
) -> list[Path]:
    """Write frames start_index .. start_index + frames − 1 and return their image paths.

    Frame i draws from a generator seeded by (seed, i), so any subset can be made independently
    (in parallel, or resumed after a kill) and comes out the same; complete frames are skipped
    (whatever options wrote them: use a new folder for other options). ``click_noise`` and
    ``distortion`` are render_frame's; the distortion is in each ``NNNNN.camera.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(start_index, start_index + frames):
        image_path, annotation_path, camera_path = frame_paths(out_dir, index)
        images.append(image_path)
        if image_path.exists() and annotation_path.exists() and camera_path.exists():
            continue
        image, annotation, camera_json = render_frame(
            np.random.default_rng([seed, index]), width, height, click_noise=click_noise, distortion=distortion
        )
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for frame {index}")
        atomic_write(image_path, jpeg.tobytes())
        atomic_write(camera_path, json.dumps(camera_json, indent=1).encode())
        atomic_write(annotation_path, json.dumps(annotation).encode())
    return images
