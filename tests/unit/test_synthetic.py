"""Synthetic SoccerNet frames: real format, true cameras that SoccerNet's own evaluator accepts,
deterministic per (seed, frame)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from SoccerNet.Evaluation.utils_calibration import (
    Camera,
    SoccerPitch,
    evaluate_camera_prediction,
    get_polylines,
    scale_points,
)

from trainer.data.synthetic.generate import render_frame

W, H = 960, 540


@pytest.fixture(scope="module")
def rendered() -> list[tuple[np.ndarray, dict, dict]]:
    return [render_frame(np.random.default_rng([11, i]), W, H) for i in range(16)]


def test_image_is_a_pitch_picture(rendered: list[tuple[np.ndarray, dict, dict]]) -> None:
    for image, _, _ in rendered:
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        assert image.std() > 10.0
        lower = image[H // 2 :].reshape(-1, 3).astype(float)
        green_dominant = (lower[:, 1] > lower[:, 0]) & (lower[:, 1] > lower[:, 2])
        assert green_dominant.mean() > 0.5
        assert (image.reshape(-1, 3).min(axis=1) > 190).mean() > 0.0005  # white line paint


def test_annotation_has_soccernet_format(rendered: list[tuple[np.ndarray, dict, dict]]) -> None:
    for _, annotation, _ in rendered:
        assert len(annotation) >= 3
        assert set(annotation) <= set(SoccerPitch.lines_classes) - {"Line unknown", "Goal unknown"}
        for name, points in annotation.items():
            assert len(points) >= (4 if name.startswith("Circle") else 2)
            for point in points:
                assert set(point) == {"x", "y"}
                assert 0.0 <= point["x"] <= 1.0 and 0.0 <= point["y"] <= 1.0


def test_camera_is_a_broadcast_camera(rendered: list[tuple[np.ndarray, dict, dict]]) -> None:
    for _, _, camera_json in rendered:
        camera = Camera(W, H)
        camera.from_json_parameters(json.loads(json.dumps(camera_json)))
        assert camera.position[2] < -5.0  # above the ground
        assert camera.position[1] > 34.0  # behind the 'bottom' touch line
        assert camera.principal_point == [W / 2, H / 2]


def test_true_camera_scores_perfectly_with_soccernet_evaluator(
    rendered: list[tuple[np.ndarray, dict, dict]],
) -> None:
    """Every clicked point lies within 2 px of the line the true camera projects, per SoccerNet."""
    for _, annotation, camera_json in rendered[:6]:  # SoccerNet's evaluator is slow pure Python
        projected = get_polylines(camera_json, W, H, sampling_factor=1.0)
        truth = scale_points(annotation, W, H)
        _, _, errors = evaluate_camera_prediction(projected, truth, 2.0)
        for name in truth:
            assert name in errors, name
            assert max(errors[name]) < 2.0, (name, max(errors[name]))


def test_views_cover_both_halves_and_the_centre() -> None:
    seen = {"left": 0, "right": 0, "centre": 0, "goal": 0}
    for i in range(60):
        _, annotation, _ = render_frame(np.random.default_rng([5, i]), W, H)
        seen["left"] += any("left" in n and "Side line left" != n for n in annotation)
        seen["right"] += any("right" in n and "Side line right" != n for n in annotation)
        seen["centre"] += "Circle central" in annotation
        seen["goal"] += any(n.startswith("Goal") for n in annotation)
    assert min(seen.values()) >= 10, seen


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    a = render_frame(np.random.default_rng([1, 0]))
    b = render_frame(np.random.default_rng([1, 0]))
    c = render_frame(np.random.default_rng([2, 0]))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]
    assert a[1] != c[1]
