"""Augmentations for keypoint training: resize, horizontal flip, colour, noise.

Geometry (resize, flip) is done here with cv2 and applied to the keypoints by our own
functions, because albumentations neither swaps keypoint indices on a flip nor follows the
pixel-centre convention of cv2's resize when it scales keypoints. The photometric part
(brightness/contrast, hue/saturation, Gaussian noise) is albumentations, on uint8.

Order: resize first, then flip, colour and noise at the (smaller) input size: the noise is the
expensive step and costs about half as much at 720x405 as at 960x540.

Every random choice of a sample comes from one generator seeded by (seed, epoch, index), so a
resumed run sees exactly the augmentation an uninterrupted run would have, in whichever worker.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402 - the update check must be off before the import
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from trainer.data.keypoints.table import INVISIBLE, VISIBILITY_MARGIN_PX, VISIBLE, flip_keypoints  # noqa: E402
from trainer.data.soccernet import NATIVE_SIZE  # noqa: E402

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths and probabilities of the training augmentations."""

    flip_p: float = 0.5
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    brightness_contrast_p: float = 0.5
    hue_shift: int = 10
    saturation_shift: int = 20
    hue_saturation_p: float = 0.5
    noise_std: tuple[float, float] = (0.01, 0.05)
    noise_p: float = 0.5


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation: a pure function of (seed, epoch, index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def scale_keypoints(keypoints: np.ndarray, src: Size, dst: Size) -> np.ndarray:
    """Map pixel coordinates of a ``src`` image to a ``dst`` resize of it.

    Pixel centres sit at integer coordinates, as in cv2.resize: x' = (x + 0.5) * s - 0.5.
    The inverse is the same call with ``src`` and ``dst`` swapped.
    """
    out = keypoints.astype(np.float32, copy=True)
    for axis, (a, b) in enumerate(zip(src, dst)):
        out[:, axis] = (out[:, axis] + 0.5) * (b / a) - 0.5
    return out


def scale_margin(margin: float, src: Size, dst: Size) -> float:
    """``margin`` (px beyond the outermost pixel centres of ``src``) in ``dst`` pixels.

    The image edge lies half a pixel beyond the outermost centres, and only the part beyond the
    edge scales. The larger axis scale, so that a point the derivation called visible stays so
    when the aspect ratio changes slightly (405 / 540 is not exactly 720 / 960).
    """
    scale = max(b / a for a, b in zip(src, dst))
    return (margin - 0.5) * scale + 0.5


def mark_outside_invisible(keypoints: np.ndarray, size: Size, margin: float) -> np.ndarray:
    """A visible point that a transform moved outside the image (plus ``margin``) is invisible.

    Unknown points stay unknown: they were never located, so no transform can place them.
    """
    width, height = size
    x, y, state = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    outside = (x < -margin) | (x > width - 1 + margin) | (y < -margin) | (y > height - 1 + margin)
    out = keypoints.copy()
    out[(state == VISIBLE) & outside, 2] = INVISIBLE
    return out


def resize(image: np.ndarray, keypoints: np.ndarray, src: Size, dst: Size) -> tuple[np.ndarray, np.ndarray]:
    """Resize the image to ``dst`` and map keypoints given in ``src`` pixels along with it.

    ``src`` is the size the keypoints were derived at, which the image normally has; an image of
    another size still covers the same view, so it is resized straight to ``dst``.
    """
    height, width = image.shape[:2]
    if (width, height) != tuple(dst):
        shrinking = dst[0] < width or dst[1] < height
        image = cv2.resize(image, tuple(dst), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if tuple(src) != tuple(dst):
        keypoints = scale_keypoints(keypoints, src, dst)
    return image, keypoints


def photometric(config: AugmentConfig) -> A.Compose:
    """The colour and noise augmentations; they move no pixel, so keypoints are not passed."""
    return A.Compose(
        [
            A.RandomBrightnessContrast(
                brightness_limit=config.brightness_limit,
                contrast_limit=config.contrast_limit,
                p=config.brightness_contrast_p,
            ),
            A.HueSaturationValue(
                hue_shift_limit=config.hue_shift,
                sat_shift_limit=config.saturation_shift,
                val_shift_limit=0,
                p=config.hue_saturation_p,
            ),
            A.GaussNoise(std_range=config.noise_std, p=config.noise_p),
        ]
    )


class TrainTransform:
    """Resize to the input size, random flip with index swap, colour jitter, noise.

    Input: a decoded RGB uint8 image and keypoints (57, 3) in pixels of ``source_size``.
    Output: uint8 image (H, W, 3) at ``input_size`` and keypoints in its pixels.
    """

    def __init__(
        self,
        input_size: Size,
        *,
        seed: int,
        source_size: Size = NATIVE_SIZE,
        config: AugmentConfig = AugmentConfig(),
        source_margin: float = VISIBILITY_MARGIN_PX,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.source_size = (int(source_size[0]), int(source_size[1]))
        self.seed = seed
        self.config = config
        # The 1e-3 absorbs float32 rounding of points that sit exactly on the derivation's margin.
        self.margin = scale_margin(source_margin, self.source_size, self.input_size) + 1e-3
        self._photometric = photometric(config)

    def __call__(
        self, image: np.ndarray, keypoints: np.ndarray, *, epoch: int, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = sample_rng(self.seed, epoch, index)
        image, keypoints = resize(image, keypoints, self.source_size, self.input_size)
        if rng.random() < self.config.flip_p:
            image = cv2.flip(image, 1)
            keypoints = flip_keypoints(keypoints, self.input_size[0])
        keypoints = mark_outside_invisible(keypoints, self.input_size, self.margin)
        self._photometric.set_random_state(rng, random.Random(int(rng.integers(2**63))))
        image = self._photometric(image=image)["image"]
        return image, keypoints.astype(np.float32, copy=False)


class ValidTransform:
    """Resize only: validation must see the frames as they are."""

    def __init__(self, input_size: Size, *, source_size: Size = NATIVE_SIZE) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.source_size = (int(source_size[0]), int(source_size[1]))

    def __call__(
        self, image: np.ndarray, keypoints: np.ndarray, *, epoch: int = 0, index: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        image, keypoints = resize(image, keypoints, self.source_size, self.input_size)
        return image, keypoints.astype(np.float32, copy=False)
