"""The derivation's homography: its own Levenberg-Marquardt refinement, the pole-based fit that
places points in views with too few intersections for RANSAC (a centre circle and two lines), and
the expected error of a line-line crossing that decides when the homography's point is better."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.keypoints.derivation import _annotation_points, derive_keypoints_with_sources
from trainer.data.keypoints.geometry import fit_line, intersect_lines, intersection_spread
from trainer.data.keypoints.homography import _click_model, fit_ground_homography, refine_homography
from trainer.data.keypoints.table import ON_GROUND, VISIBLE, XYZ
from trainer.data.synthetic.camera import camera_looking_at
from trainer.data.synthetic.render import render_view

W, H = 960, 540
CENTRE_VIEW = camera_looking_at(np.array((4.0, 60.0, -15.0)), np.array((14.0, -4.0, 0.0)), 50.0, 0.7, W, H)
"""Sees the centre circle, the halfway line and the right penalty area's long line, among others."""
FEW_POINTS = ("Circle central", "Middle line", "Big rect. right main")
"""Two line-conic points only: no four in general position, yet the clicks fix the homography."""


def true_positions(camera_json: dict) -> np.ndarray:
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    return np.array([camera.project_point(xyz)[:2] for xyz in XYZ])


def centre_view_annotation(seed: int, click_noise: float = 0.0) -> dict:
    return render_view(CENTRE_VIEW, np.random.default_rng(seed), W, H, click_noise=click_noise)[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_and_two_lines_place_the_points_they_determine(seed: int) -> None:
    annotation = {name: centre_view_annotation(seed)[name] for name in FEW_POINTS}
    kps, sources = derive_keypoints_with_sources(annotation, W, H, resolve_ambiguity=False)
    truth = true_positions(CENTRE_VIEW)
    inside = (truth[:, 0] >= 3) & (truth[:, 0] <= W - 4) & (truth[:, 1] >= 3) & (truth[:, 1] <= H - 4)
    visible = kps[:, 2] == VISIBLE
    assert (visible[ON_GROUND & inside]).all()
    assert "homography" in sources
    errors = np.hypot(*(kps[visible, :2] - truth[visible]).T)
    assert np.median(errors) <= 1.0
    assert errors.max() <= 5.0


def test_circle_and_a_line_through_its_centre_alone_place_nothing_more() -> None:
    """The halfway line and its circle leave the homography free along the line: no invented points."""
    annotation = {name: centre_view_annotation(0)[name] for name in FEW_POINTS[:2]}
    kps, sources = derive_keypoints_with_sources(annotation, W, H, resolve_ambiguity=False)
    assert set(sources) == {"", "line-conic"}
    assert int((kps[:, 2] != -1).sum()) == 2


def test_refinement_matches_scipy_least_squares() -> None:
    """Our LM reaches the robust (soft-L1) optimum SciPy's least_squares finds, to a hundredth of a pixel."""
    annotation = centre_view_annotation(3, click_noise=1.0)
    kps, _ = derive_keypoints_with_sources(annotation, W, H, resolve_ambiguity=False)
    found = np.flatnonzero(ON_GROUND & np.isfinite(kps[:, 0]))
    world, image = XYZ[found, :2], kps[found, :2].astype(np.float64)
    fit = fit_ground_homography(world, image + np.random.default_rng(0).normal(0.0, 2.0, image.shape))
    assert fit is not None
    start, _ = fit
    lines = _annotation_points(annotation, W, H)
    ours = refine_homography(start, world, image, lines)
    current, batch_residuals = _click_model(start, world, image, lines)
    reference = least_squares(
        lambda p: batch_residuals(p[None])[0], np.zeros(8), loss="soft_l1", f_scale=1.5, x_scale="jac",
        ftol=1e-10, xtol=1e-10, gtol=1e-10,
    )
    assert reference.success
    scipy_h = current(reference.x[None])[0]
    pitch = np.c_[XYZ[ON_GROUND, :2], np.ones(int(ON_GROUND.sum()))]
    ours_px, scipy_px, start_px = (
        (pitch @ h.T)[:, :2] / (pitch @ h.T)[:, 2:] for h in (ours, scipy_h, start)
    )
    in_view = (np.abs(scipy_px[:, 0] - W / 2) < W) & (np.abs(scipy_px[:, 1] - H / 2) < H)
    assert in_view.sum() >= 10
    assert np.abs(start_px - scipy_px)[in_view].max() > 0.5  # the refinement had work to do
    assert np.abs(ours_px - scipy_px)[in_view].max() < 0.01


def test_intersection_spread_predicts_the_crossing_error_of_noisy_clicks() -> None:
    """Monte Carlo: the predicted RMS error of two fitted lines' crossing matches the observed one,
    and short, few-click lines at a shallow angle are rated far less sure than long ones."""
    rng = np.random.default_rng(7)
    corner = np.array([400.0, 300.0])

    def clicks(direction_deg: float, start: float, stop: float, count: int) -> np.ndarray:
        direction = np.array([np.cos(np.radians(direction_deg)), np.sin(np.radians(direction_deg))])
        return corner + np.linspace(start, stop, count)[:, None] * direction

    for first, second in (
        (clicks(0.0, 20.0, 600.0, 8), clicks(90.0, 20.0, 400.0, 6)),
        (clicks(0.0, 30.0, 90.0, 3), clicks(12.0, 40.0, 80.0, 2)),
    ):
        errors, predicted = [], []
        for _ in range(2000):
            l1 = fit_line(first + rng.normal(0.0, 1.0, first.shape))
            l2 = fit_line(second + rng.normal(0.0, 1.0, second.shape))
            point = intersect_lines(l1, l2)
            errors.append(float(np.hypot(*(point - corner))))
            predicted.append(intersection_spread(l1, l2, point, 1.0))
        rms = float(np.sqrt(np.mean(np.square(errors))))
        assert 0.7 * rms <= float(np.median(predicted)) <= 1.3 * rms
    assert rms > 5.0
