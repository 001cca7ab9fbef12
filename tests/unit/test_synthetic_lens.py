"""Synthetic frames like real annotations: hand-click scatter and a distorting lens.

The lens is checked against SoccerNet's own ``Camera.project_point`` (which applies the camera
JSON's radial distortion), so drawing, clicking and the written camera agree with the evaluator.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.synthetic.camera import View, camera_looking_at
from trainer.data.synthetic.generate import render_frame
from trainer.data.synthetic.pitch import SEGMENTS
from trainer.data.synthetic.render import render_view

W, H = 960, 540


def _clicks_px(annotation: dict) -> dict[str, np.ndarray]:
    return {n: np.array([[p["x"] * (W - 1), p["y"] * (H - 1)] for p in pts]) for n, pts in annotation.items()}


def _soccernet_curve(camera_json: dict, start: np.ndarray, end: np.ndarray, distort: bool) -> np.ndarray:
    """A straight pitch segment as SoccerNet's camera projects it, densely sampled (in front only)."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    points = [camera.project_point(start + t * (end - start), distort=distort) for t in np.linspace(0, 1, 4000)]
    return np.array([p[:2] for p in points if p[2] != 0])


def _distance_to_curve(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
    return np.sqrt(((points[:, None, :] - curve[None, :, :]) ** 2).sum(axis=2)).min(axis=1)


def test_click_noise_adds_scatter_to_the_same_clicks() -> None:
    """The same generator state gives the same camera and click places; only the scatter grows."""
    differences = []
    for i in range(6):
        _, clean, camera_clean = render_frame(np.random.default_rng([3, i]), W, H)
        _, noisy, camera_noisy = render_frame(np.random.default_rng([3, i]), W, H, click_noise=1.0)
        assert camera_clean == camera_noisy and clean.keys() == noisy.keys()
        a, b = _clicks_px(clean), _clicks_px(noisy)
        for name in a:
            inside = (b[name] > 0.5).all(axis=1) & (b[name] < [W - 1.5, H - 1.5]).all(axis=1)
            differences.append((b[name] - a[name])[inside])
    scatter = float(np.concatenate(differences).std())
    # Careful clicks scatter 0.4 px; with 1 px more the same draws scatter hypot(0.4, 1) ≈ 1.08 px.
    assert 0.55 < scatter < 0.8, scatter


def test_distortion_is_written_in_the_camera_and_the_rest_is_the_same_camera() -> None:
    _, _, plain = render_frame(np.random.default_rng([4, 0]), W, H)
    _, _, bent = render_frame(np.random.default_rng([4, 0]), W, H, distortion=0.03)
    assert bent["radial_distortion"] == [0.03, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert plain["radial_distortion"] == [0.0] * 6
    assert {k: v for k, v in bent.items() if k != "radial_distortion"} == {
        k: v for k, v in plain.items() if k != "radial_distortion"
    }


@pytest.mark.parametrize("k1", [0.08, -0.08])
def test_clicks_follow_the_distorted_lines(k1: float) -> None:
    """Every click on a straight line is on SoccerNet's distorted projection of it, and long lines
    are clicked measurably off the undistorted (pinhole) line: the lens really bent them."""
    bent_somewhere = False
    for i in range(4):
        _, annotation, camera_json = render_frame(np.random.default_rng([6, i]), W, H, distortion=k1)
        for name, clicks in _clicks_px(annotation).items():
            if name not in SEGMENTS:
                continue
            curve = _soccernet_curve(camera_json, *SEGMENTS[name], distort=True)
            assert _distance_to_curve(clicks, curve).max() < 2.0, name
            straight = _soccernet_curve(camera_json, *SEGMENTS[name], distort=False)
            bent_somewhere |= bool(_distance_to_curve(clicks, straight).max() > 4.0)
    assert bent_somewhere


def test_painted_lines_bend_with_the_lens() -> None:
    """The picture is drawn through the same lens: paint lies on the distorted curve, not the straight one."""
    camera_json = camera_looking_at(np.array([0.0, 62.0, -16.0]), np.array([-30.0, 0.0, 0.0]), 55.0, 0.0, W, H)
    camera_json["radial_distortion"] = [0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
    image, annotation = render_view(camera_json, np.random.default_rng(1), W, H)
    # Far lines are a pixel wide or less: take the whitest pixel of each 3 × 3 neighbourhood.
    whiteness = cv2.dilate(image.min(axis=2), np.ones((3, 3), np.uint8)).astype(float)
    view = View.from_json(camera_json, W, H)
    assert view.k1 == 0.1
    checked = 0
    for name in ("Side line bottom", "Big rect. left main", "Big rect. left top", "Middle line"):
        assert name in annotation
        on_curve = _soccernet_curve(camera_json, *SEGMENTS[name], distort=True)
        on_line = _soccernet_curve(camera_json, *SEGMENTS[name], distort=False)
        keep = (on_curve >= 0).all(axis=1) & (on_curve < [W - 1, H - 1]).all(axis=1)
        keep &= (on_line >= 0).all(axis=1) & (on_line < [W - 1, H - 1]).all(axis=1)
        apart = np.hypot(*(on_curve - on_line).T) > 4.0
        if (keep & apart).sum() < 50:
            continue
        curve_px = np.round(on_curve[keep & apart]).astype(int)
        line_px = np.round(on_line[keep & apart]).astype(int)
        on_paint = np.median(whiteness[curve_px[:, 1], curve_px[:, 0]])
        off_paint = np.median(whiteness[line_px[:, 1], line_px[:, 0]])
        assert on_paint > off_paint + 40, (name, on_paint, off_paint)
        checked += 1
    assert checked >= 2


def test_undistortion_inverts_the_lens() -> None:
    for k1 in (0.03, -0.1):
        camera_json = camera_looking_at(np.array([0.0, 62.0, -16.0]), np.array([0.0, 0.0, 0.0]), 50.0, 0.0, W, H)
        camera_json["radial_distortion"] = [k1, 0.0, 0.0, 0.0, 0.0, 0.0]
        view = View.from_json(camera_json, W, H)
        pixels = np.random.default_rng(0).uniform([-200, -200], [W + 200, H + 200], (500, 2))
        np.testing.assert_allclose(view.normalised_to_pixels(view.pixels_to_normalised(pixels)), pixels, atol=1e-6)
        canvas = view.undistorted_canvas()
        corners = canvas.normalised_to_pixels_pinhole(view.pixels_to_normalised(np.array([[0, 0], [W - 1, H - 1]])))
        assert (corners >= 0).all() and (corners <= [canvas.width - 1, canvas.height - 1]).all()
