"""Augmentations: determinism per (seed, epoch, index), flip and resize geometry, visibility."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from trainer.data.keypoints.table import FLIP_INDEX, NUM_KEYPOINTS, VISIBILITY_MARGIN_PX
from trainer.data.transforms import (
    AugmentConfig,
    TrainTransform,
    ValidTransform,
    mark_outside_invisible,
    scale_keypoints,
)

NATIVE = (960, 540)
INPUT = (480, 270)
NO_COLOUR = AugmentConfig(brightness_contrast_p=0.0, hue_saturation_p=0.0, noise_p=0.0)


def _keypoints(rng: np.random.Generator) -> np.ndarray:
    """Visible points well inside the frame, a few unknown (NaN) and a few invisible outside."""
    kps = np.empty((NUM_KEYPOINTS, 3), np.float32)
    kps[:, 0] = rng.integers(20, NATIVE[0] - 20, NUM_KEYPOINTS)
    kps[:, 1] = rng.integers(20, NATIVE[1] - 20, NUM_KEYPOINTS)
    kps[:, 2] = 1
    kps[5:10] = (np.nan, np.nan, -1)
    kps[10:13, 0] = -200
    kps[10:13, 2] = 0
    return kps


def _image(kps: np.ndarray) -> np.ndarray:
    """A dark noisy frame with a bright 5x5 square centred on each visible keypoint."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 60, (NATIVE[1], NATIVE[0], 3), dtype=np.uint8)
    for x, y, state in kps:
        if state == 1:
            image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = 255
    return image


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    kps = _keypoints(np.random.default_rng(0))
    return _image(kps), kps


def test_same_seed_epoch_index_gives_identical_output(sample) -> None:
    image, kps = sample
    first = TrainTransform(INPUT, seed=7)
    second = TrainTransform(INPUT, seed=7)
    out_a = first(image, kps, epoch=3, index=11)
    first(image, kps, epoch=0, index=2)  # state left behind by another sample must not leak
    out_b = first(image, kps, epoch=3, index=11)
    out_c = second(image, kps, epoch=3, index=11)
    for other in (out_b, out_c):
        np.testing.assert_array_equal(out_a[0], other[0])
        np.testing.assert_array_equal(out_a[1], other[1])


def test_another_epoch_index_or_seed_differs(sample) -> None:
    image, kps = sample
    base = TrainTransform(INPUT, seed=7)(image, kps, epoch=3, index=11)[0]
    assert not np.array_equal(base, TrainTransform(INPUT, seed=7)(image, kps, epoch=4, index=11)[0])
    assert not np.array_equal(base, TrainTransform(INPUT, seed=7)(image, kps, epoch=3, index=12)[0])
    assert not np.array_equal(base, TrainTransform(INPUT, seed=8)(image, kps, epoch=3, index=11)[0])


def test_output_is_uint8_at_the_input_size(sample) -> None:
    image, kps = sample
    out, out_kps = TrainTransform(INPUT, seed=0)(image, kps, epoch=0, index=0)
    assert out.dtype == np.uint8 and out.shape == (INPUT[1], INPUT[0], 3)
    assert out_kps.dtype == np.float32 and out_kps.shape == (NUM_KEYPOINTS, 3)


def _run(config: AugmentConfig, sample) -> tuple[np.ndarray, np.ndarray]:
    image, kps = sample
    return TrainTransform(INPUT, seed=0, config=config)(image, kps, epoch=0, index=0)


def test_flip_swaps_indices_and_mirrors_geometry(sample) -> None:
    plain_image, plain = _run(NO_COLOUR, sample)
    flip_config = AugmentConfig(flip_p=1.0, brightness_contrast_p=0.0, hue_saturation_p=0.0, noise_p=0.0)
    flipped_image, flipped = _run(flip_config, sample)
    np.testing.assert_array_equal(flipped_image, plain_image[:, ::-1])
    width = INPUT[0]
    for i in range(NUM_KEYPOINTS):
        source = plain[FLIP_INDEX[i]]
        if source[2] == -1:
            assert flipped[i][2] == -1 and np.isnan(flipped[i][:2]).all()
            continue
        assert flipped[i][2] == source[2]
        np.testing.assert_allclose(flipped[i][:2], [width - 1 - source[0], source[1]], atol=1e-4)


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_visible_keypoints_land_on_their_image_marks(sample, flip_p: float) -> None:
    config = AugmentConfig(flip_p=flip_p, brightness_contrast_p=0.0, hue_saturation_p=0.0, noise_p=0.0)
    image, kps = _run(config, sample)
    gray = image.max(axis=2)
    visible = kps[kps[:, 2] == 1]
    assert len(visible) > 30
    for x, y, _ in visible:
        assert gray[int(round(y)), int(round(x))] > 200, (x, y)


def test_unknown_stays_unknown_and_invisible_stays_invisible(sample) -> None:
    _, source = sample
    for epoch in range(4):
        _, kps = TrainTransform(INPUT, seed=3)(sample[0], source, epoch=epoch, index=0)
        assert (kps[:, 2] == -1).sum() == 5 and np.isnan(kps[kps[:, 2] == -1, :2]).all()
        assert (kps[:, 2] == 0).sum() == 3


def test_flip_happens_about_half_the_time(sample) -> None:
    image, kps = sample
    transform = TrainTransform((96, 54), seed=0, config=NO_COLOUR)
    plain = transform(image, kps, epoch=0, index=0)
    reference = ValidTransform((96, 54))(image, kps)[0]
    flips = sum(
        not np.array_equal(transform(image, kps, epoch=e, index=i)[0], reference) for e in range(5) for i in range(20)
    )
    assert 30 <= flips <= 70
    assert plain[0].shape == reference.shape


def test_visible_point_pushed_outside_becomes_invisible() -> None:
    kps = np.array(
        [[10, 10, 1], [-3, 10, 1], [479.5, 10, 1], [10, 270, 1], [-50, 5, 0], [np.nan, np.nan, -1]], np.float32
    )
    out = mark_outside_invisible(kps, INPUT, margin=0.0)
    np.testing.assert_array_equal(out[:, 2], [1, 0, 0, 0, 0, -1])
    assert mark_outside_invisible(kps, INPUT, margin=4.0)[1, 2] == 1
    np.testing.assert_array_equal(out[:, :2], kps[:, :2])


@pytest.mark.parametrize("size", [NATIVE, (720, 405), (640, 360)])
@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_points_visible_in_the_derivation_margin_stay_visible(size, flip_p: float) -> None:
    m = VISIBILITY_MARGIN_PX
    kps = np.full((NUM_KEYPOINTS, 3), (400.0, 300.0, 1.0), np.float32)
    kps[:4, :2] = [(-m, 10), (NATIVE[0] - 1 + m, 10), (10, -m), (10, NATIVE[1] - 1 + m)]
    kps[4:8, :2] = [(-m - 2, 10), (NATIVE[0] + m + 1, 10), (10, -m - 2), (10, NATIVE[1] + m + 1)]
    image = np.zeros((NATIVE[1], NATIVE[0], 3), np.uint8)
    config = AugmentConfig(flip_p=flip_p, brightness_contrast_p=0.0, hue_saturation_p=0.0, noise_p=0.0)
    _, out = TrainTransform(size, seed=0, config=config)(image, kps, epoch=0, index=0)
    moved = out if flip_p == 0.0 else out[np.argsort(FLIP_INDEX)]
    assert (moved[:4, 2] == 1).all()
    assert (moved[4:8, 2] == 0).all()
    assert (moved[8:, 2] == 1).all()


def test_scale_keypoints_follows_cv2_resize() -> None:
    """A smooth blob's centroid after cv2.resize is where scale_keypoints puts its centre."""
    ys, xs = np.mgrid[0 : NATIVE[1], 0 : NATIVE[0]].astype(np.float64)
    for x, y in [(100.3, 50.8), (701.0, 333.5), (40.6, 500.2)]:
        blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 5.0**2)).astype(np.float32)
        for size in [(720, 405), (640, 360), (480, 270)]:
            for interpolation in (cv2.INTER_AREA, cv2.INTER_LINEAR):
                small = cv2.resize(blob, size, interpolation=interpolation).astype(np.float64)
                sy, sx = np.mgrid[0 : size[1], 0 : size[0]]
                centroid = np.array([(sx * small).sum(), (sy * small).sum()]) / small.sum()
                point = scale_keypoints(np.array([[x, y, 1]], np.float32), NATIVE, size)[0, :2]
                np.testing.assert_allclose(point, centroid, atol=0.02)
                back = scale_keypoints(np.array([[*point, 1]], np.float32), size, NATIVE)[0, :2]
                np.testing.assert_allclose(back, [x, y], atol=1e-3)


def test_valid_transform_only_resizes(sample) -> None:
    image, kps = sample
    out, out_kps = ValidTransform(INPUT)(image, kps)
    np.testing.assert_array_equal(out, cv2.resize(image, INPUT, interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(out_kps, scale_keypoints(kps, NATIVE, INPUT))
    same, same_kps = ValidTransform(NATIVE)(image, kps)
    np.testing.assert_array_equal(same, image)
    np.testing.assert_array_equal(same_kps, kps)
