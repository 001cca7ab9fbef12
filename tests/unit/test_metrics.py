"""Heatmap decoding, keypoint metrics and the challenge metric (EvalAI = completeness × JaC@5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from SoccerNet.Evaluation.utils_calibration import (
    Camera,
    distance_to_polyline,
    evaluate_camera_prediction,
    get_polylines,
    mirror_labels,
    scale_points,
)

from tests.truth import H, W, true_keypoints
from trainer.data.synthetic.generate import render_frame
from trainer.evaluation.challenge import _distances_to_polyline, evalai_score, frame_accuracies
from trainer.evaluation.heatmaps import keypoints_from_heatmaps
from trainer.evaluation.keypoint_metrics import keypoint_metrics
from trainer.model.loss import gaussian_targets



def annotation_of(camera_json: dict) -> dict:
    """An annotation of exactly what the camera shows: vertices of its own projected polylines.

    Synthetic annotations leave out stubs a person would not click (under 12 px), which the
    metric then counts as false positives even for the true camera; this one leaves nothing out.
    """
    lines = get_polylines(camera_json, W, H, sampling_factor=0.9)
    annotation = {}
    for name, points in lines.items():
        keep = np.unique(np.linspace(0, len(points) - 1, min(len(points), 8)).round().astype(int))
        annotation[name] = [{"x": points[i]["x"] / (W - 1), "y": points[i]["y"] / (H - 1)} for i in keep]
    return annotation


def official_accuracy(camera_json: dict, annotation: dict, threshold: float) -> float:
    """SoccerNet 0.2.0's CameraCalibration.evaluate for one frame, verbatim in substance."""
    truth = scale_points(annotation, W, H)
    projected = get_polylines(camera_json, W, H, sampling_factor=0.9)
    accuracies = []
    for labels in (truth, mirror_labels(truth)):
        confusion, _, _ = evaluate_camera_prediction(projected, labels, threshold)
        accuracies.append(confusion[0, 0] / confusion.sum() if confusion.sum() > 0 else 0.0)
    return float(accuracies[0] if accuracies[0] > accuracies[1] else accuracies[1])


def aim(camera_json: dict) -> float:
    """Pitch x where the optical axis meets the ground."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    axis = camera.rotation.T @ np.array([0.0, 0.0, 1.0])
    return float(camera.position[0] - camera.position[2] / axis[2] * axis[0])


def perturbed(camera_json: dict, pan: float = 0.0, focal: float = 1.0) -> dict:
    out = dict(camera_json)
    out["pan_degrees"] = camera_json["pan_degrees"] + pan
    out["x_focal_length"] = camera_json["x_focal_length"] * focal
    out["y_focal_length"] = camera_json["y_focal_length"] * focal
    return out


@pytest.fixture(scope="module")
def frames() -> list[tuple[dict, dict]]:
    """(synthetic annotation, true camera) of 60 broadcast frames."""
    rng = np.random.default_rng(7)
    return [render_frame(rng, W, H)[1:] for _ in range(60)]


# --- heatmaps -------------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "input_size"), [(2, (480, 270)), (4, (640, 360)), (1, (240, 136))])
def test_gaussian_peaks_decode_to_their_points(stride: int, input_size: tuple[int, int]) -> None:
    rng = np.random.default_rng(stride)
    width, height = input_size
    points = np.c_[rng.uniform(8, width - 9, 57), rng.uniform(8, height - 9, 57), np.ones(57)]
    points[5, 2] = 0  # invisible: an all-zero map
    heatmap_size = (math.ceil(height / stride), math.ceil(width / stride))
    targets = gaussian_targets(torch.tensor(points[None], dtype=torch.float32), heatmap_size, stride, sigma=2.0)
    decoded = keypoints_from_heatmaps(targets, stride, input_size, (W, H))
    assert decoded.shape == (1, 57, 3)
    expected = (points[:, :2] + 0.5) * np.array([W / width, H / height]) - 0.5
    error = np.linalg.norm(decoded[0, :, :2] - expected, axis=1)
    error[5] = 0
    assert error.max() < 0.5
    assert np.median(error) < 0.1
    assert decoded[0, 5, 2] == 0 and np.all(np.delete(decoded[0, :, 2], 5) > 0.9)
    assert np.allclose(keypoints_from_heatmaps(targets.numpy(), stride, input_size, (W, H)), decoded)


def test_peaks_on_the_border_or_alone_stay_on_their_cell() -> None:
    """No neighbour on one side (or only zeros around) leaves nothing to interpolate: the cell centre."""
    maps = np.zeros((2, 58, 10, 20))
    maps[:, 0, 0, 0] = 1.0
    maps[:, 1, 9, 19] = 0.7
    maps[:, 1, 9, 18] = 0.2
    maps[:, 2, 4, 7] = 0.5
    decoded = keypoints_from_heatmaps(maps, 2, (40, 20), (40, 20))
    assert np.allclose(decoded[:, 0], [0.5, 0.5, 1.0])
    assert np.allclose(decoded[:, 1], [38.5, 18.5, 0.7])
    assert np.allclose(decoded[:, 2], [14.5, 8.5, 0.5])


# --- keypoint metrics -----------------------------------------------------------------------


def test_keypoint_metrics_count_what_they_say() -> None:
    targets = np.full((1, 57, 3), np.nan)
    targets[0, :, 2] = -1
    targets[0, :4] = [[100, 100, 1], [200, 200, 1], [300, 300, 1], [400, 400, 1]]
    targets[0, 4] = [0, 0, 0]  # invisible
    predicted = np.zeros((1, 57, 3))
    predicted[0, :6] = [
        [101, 100, 0.9],  # 1 px off
        [203, 204, 0.8],  # 5 px off
        [300, 300, 0.1],  # not confident: a miss
        [430, 400, 0.9],  # 30 px off
        [50, 50, 0.9],  # target invisible: a false positive
        [10, 10, 0.9],  # target unknown: not judged
    ]
    m = keypoint_metrics(predicted, targets, min_confidence=0.5, match_px=5.0)
    assert m["l2_px"] == pytest.approx((1 + 5 + 30) / 3)
    assert m["pck@2"] == pytest.approx(1 / 4)
    assert m["pck@5"] == pytest.approx(1 / 4)  # 5 px is not under 5 px
    assert m["pck@10"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(1 / 4)
    assert keypoint_metrics(torch.tensor(predicted), torch.tensor(targets)) == keypoint_metrics(predicted, targets)


def test_keypoint_metrics_without_visible_targets_are_nan_not_errors() -> None:
    targets = np.zeros((2, 57, 3))
    m = keypoint_metrics(np.zeros((2, 57, 3)), targets)
    assert math.isnan(m["l2_px"]) and math.isnan(m["recall"]) and math.isnan(m["pck@5"])


# --- the challenge metric -------------------------------------------------------------------


def test_vectorised_distances_equal_soccernets() -> None:
    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 40):
        polyline = np.cumsum(rng.normal(0, 30, (count, 2)), axis=0) + 400
        if count == 3:
            polyline[2] = polyline[1]  # a zero-length segment, as get_polylines can produce
        points = rng.uniform(0, 900, (25, 2))
        ours = _distances_to_polyline(points, polyline)
        as_dicts = [{"x": x, "y": y} for x, y in polyline]
        with np.errstate(divide="ignore", invalid="ignore"):
            theirs = [distance_to_polyline({"x": x, "y": y}, as_dicts) for x, y in points]
        assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-9)


def test_frame_accuracy_equals_soccernets_evaluation(frames: list[tuple[dict, dict]]) -> None:
    cases = [(frames[0][1], frames[0][0]), (perturbed(frames[1][1], pan=0.4, focal=1.02), frames[1][0])]
    cases.append((frames[2][1], mirror_labels(frames[2][0])))  # the mirrored labels must win here
    for camera_json, annotation in cases:
        ours = frame_accuracies(camera_json, annotation, (5.0, 20.0), W, H)
        assert ours == {t: pytest.approx(official_accuracy(camera_json, annotation, t), abs=1e-6) for t in (5.0, 20.0)}


def test_true_cameras_score_one_and_perturbed_ones_less(frames: list[tuple[dict, dict]]) -> None:
    for _, camera_json in frames[:15]:
        annotation = annotation_of(camera_json)
        assert frame_accuracies(camera_json, annotation, (5.0,), W, H)[5.0] == 1.0
        assert frame_accuracies(perturbed(camera_json, pan=1.0), annotation, (5.0,), W, H)[5.0] < 1.0
        assert frame_accuracies(perturbed(camera_json, focal=1.05), annotation, (5.0,), W, H)[5.0] < 1.0
    synthetic = [frame_accuracies(c, a, (5.0,), W, H)[5.0] for a, c in frames[:30]]
    assert np.mean(synthetic) >= 0.95  # short unannotated stubs are false positives even for the truth


def test_exact_keypoints_score_high_on_both_halves_and_the_centre(frames: list[tuple[dict, dict]]) -> None:
    groups: dict[str, list[tuple[np.ndarray, dict]]] = {"left": [], "centre": [], "right": []}
    for annotation, camera_json in frames:
        x = aim(camera_json)
        groups["left" if x < -15 else "right" if x > 15 else "centre"].append((true_keypoints(camera_json), annotation))
    for side, group in groups.items():
        assert len(group) >= 10, side
        score = evalai_score([k for k, _ in group], [a for _, a in group], W, H)
        assert score["frames"] == len(group)
        assert score["completeness"] >= 0.95, (side, score)
        assert score["accuracy@5"] >= 0.95, (side, score)
        assert score["evalai"] == pytest.approx(score["completeness"] * score["accuracy@5"])


def test_evalai_of_nothing_usable_is_zero() -> None:
    score = evalai_score([np.full((57, 3), np.nan)] * 3, [{}] * 3, W, H)
    assert score == {"frames": 3, "missed": 3, "completeness": 0.0, "accuracy@5": 0.0, "evalai": 0.0}
    with pytest.raises(ValueError):
        evalai_score([np.zeros((57, 3))], [], W, H)
