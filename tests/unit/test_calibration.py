"""Camera estimation from keypoints, checked against the true cameras of synthetic frames.

Every keypoint is a fixed pitch point, so the true camera's projections of the 57 points are
exact keypoints; a sound estimator must give that camera back, on either half of the pitch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from SoccerNet.Evaluation.utils_calibration import Camera

from tests.truth import H, W, true_keypoints
from trainer.data.keypoints.table import XYZ
from trainer.data.synthetic.generate import render_frame
from trainer.evaluation.camera import estimate_camera



def projections(camera_json: dict) -> np.ndarray:
    """Where a camera, read back the way SoccerNet's evaluation reads it, puts all 57 points."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    return np.array([camera.project_point(xyz)[:2] for xyz in XYZ])


def aim(camera_json: dict) -> float:
    """Pitch x where the optical axis meets the ground: which part of the pitch the view shows."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    axis = camera.rotation.T @ np.array([0.0, 0.0, 1.0])
    return float(camera.position[0] - camera.position[2] / axis[2] * axis[0])


@pytest.fixture(scope="module")
def frames() -> list[tuple[dict, np.ndarray]]:
    """(true camera, exact keypoints) of 36 synthetic broadcast frames."""
    rng = np.random.default_rng(2024)
    out = []
    for _ in range(36):
        _, _, camera_json = render_frame(rng, W, H)
        out.append((camera_json, true_keypoints(camera_json)))
    return out


def test_exact_keypoints_give_back_the_true_camera_on_both_halves(frames: list[tuple[dict, np.ndarray]]) -> None:
    """Every view with six points or more is solved (a tight goal zoom may show two: no camera)."""
    sides = {"left": 0, "centre": 0, "right": 0}
    for camera_json, keypoints in frames:
        if np.isfinite(keypoints[:, 0]).sum() < 6:
            continue
        estimate = estimate_camera(keypoints, W, H)
        assert estimate is not None
        x = aim(camera_json)
        sides["left" if x < -15 else "right" if x > 15 else "centre"] += 1
        assert estimate["x_focal_length"] == pytest.approx(camera_json["x_focal_length"], rel=1e-3)
        assert estimate["y_focal_length"] == estimate["x_focal_length"]
        assert estimate["principal_point"] == [W / 2, H / 2]
        assert np.allclose(estimate["position_meters"], camera_json["position_meters"], atol=0.05)
        assert estimate["position_meters"][2] < 0
        error = np.linalg.norm(projections(estimate) - projections(camera_json), axis=1)
        assert np.nanmax(error[np.isfinite(keypoints[:, 0])]) < 0.05
    assert min(sides.values()) >= 5, sides


def test_mirrored_view_of_the_other_half_is_solved_alike(frames: list[tuple[dict, np.ndarray]]) -> None:
    """A view and its mirror image through the halfway line: same difficulty, same answer."""
    camera_json = next(c for c, _ in frames if aim(c) < -15)
    mirrored = dict(camera_json)
    x, y, z = camera_json["position_meters"]
    mirrored.update(
        position_meters=[-x, y, z], pan_degrees=-camera_json["pan_degrees"], roll_degrees=-camera_json["roll_degrees"]
    )
    assert aim(mirrored) > 15
    for view in (camera_json, mirrored):
        estimate = estimate_camera(true_keypoints(view), W, H)
        assert estimate is not None
        assert estimate["x_focal_length"] == pytest.approx(view["x_focal_length"], rel=1e-3)
        assert np.allclose(estimate["position_meters"], view["position_meters"], atol=0.05)


def test_noise_and_an_outlier_bend_the_camera_little(frames: list[tuple[dict, np.ndarray]]) -> None:
    rng = np.random.default_rng(5)
    errors = []
    for camera_json, keypoints in [f for f in frames if np.isfinite(f[1][:, 0]).sum() >= 6][:20]:
        noisy = keypoints.copy()
        noisy[:, :2] += rng.normal(0.0, 1.0, (57, 2))
        visible = np.flatnonzero(np.isfinite(noisy[:, 0]))
        if len(visible) >= 8:
            noisy[rng.choice(visible), :2] += [80.0, -60.0]
        estimate = estimate_camera(noisy, W, H)
        assert estimate is not None
        error = np.linalg.norm(projections(estimate) - projections(camera_json), axis=1)[visible]
        errors.append(float(np.median(error)))
    assert np.median(errors) < 1.5
    assert max(errors) < 5.0


def test_low_confidence_points_are_not_used(frames: list[tuple[dict, np.ndarray]]) -> None:
    camera_json, keypoints = frames[0]
    visible = np.flatnonzero(np.isfinite(keypoints[:, 0]))
    wrong = keypoints.copy()
    wrong[visible[:3], :2] += 150.0
    wrong[visible[:3], 2] = 0.1
    estimate = estimate_camera(wrong, W, H, min_confidence=0.5)
    assert estimate is not None
    assert estimate["x_focal_length"] == pytest.approx(camera_json["x_focal_length"], rel=1e-3)
    unsure = keypoints.copy()
    unsure[:, 2] = 0.2
    assert estimate_camera(unsure, W, H, min_confidence=0.5) is None
    assert estimate_camera(keypoints[:, :2], W, H) is not None  # no confidence column: all used


def _subset(keypoints: np.ndarray, indices: list[int], xy: np.ndarray | None = None) -> np.ndarray:
    out = np.full((57, 3), np.nan)
    out[indices, 2] = 1.0
    out[indices, :2] = keypoints[indices, :2] if xy is None else xy
    return out


def _garbage() -> dict[str, object]:
    rng = np.random.default_rng(11)
    collinear = np.c_[np.linspace(10, 900, 6), np.linspace(100, 400, 6)]
    cases: dict[str, object] = {
        "none": None,
        "text": "not keypoints",
        "empty": np.zeros((0, 3)),
        "wrong rows": np.ones((56, 3)),
        "wrong columns": np.ones((57, 4)),
        "ragged": [[1.0, 2.0]] * 56 + [[1.0]],
        "all nan": np.full((57, 3), np.nan),
        "all zero": np.zeros((57, 3)),
        "one pixel": np.tile([100.0, 100.0, 1.0], (57, 1)),
        "infinite": np.full((57, 2), np.inf),
        "overflowing": rng.uniform(-1e300, 1e300, (57, 2)),
        "goal line only (collinear on the pitch)": _subset(np.zeros((57, 2)), [12, 10, 6, 7, 11, 13], collinear),
        "three points": _subset(np.zeros((57, 2)), [8, 9, 16], rng.uniform(0, 500, (3, 2))),
    }
    for trial in range(12):
        count = (10, 20, 57)[trial % 3]
        cloud = np.full((57, 3), np.nan)
        chosen = rng.choice(57, count, replace=False)
        cloud[chosen] = np.c_[rng.uniform([0, 0], [W, H], (count, 2)), np.ones(count)]
        cases[f"random cloud of {count} #{trial}"] = cloud
    return cases


@pytest.mark.parametrize("name", list(_garbage()))
def test_garbage_gives_none_not_an_exception(name: str) -> None:
    assert estimate_camera(_garbage()[name], W, H) is None


def test_collinear_image_points_give_none(frames: list[tuple[dict, np.ndarray]]) -> None:
    """Real pitch points squashed onto one image line cannot come from any camera."""
    _, keypoints = frames[0]
    visible = list(np.flatnonzero(np.isfinite(keypoints[:, 0])))
    squashed = _subset(keypoints, visible)
    squashed[visible, 1] = 300.0
    assert estimate_camera(squashed, W, H) is None


def test_estimate_is_json_ready() -> None:
    _, _, camera_json = render_frame(np.random.default_rng(3), W, H)
    estimate = estimate_camera(true_keypoints(camera_json), W, H)
    assert estimate is not None
    assert set(estimate) == set(camera_json)
    for key in ("pan_degrees", "tilt_degrees", "roll_degrees", "x_focal_length", "y_focal_length"):
        assert type(estimate[key]) is float and math.isfinite(estimate[key])
