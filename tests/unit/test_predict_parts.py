"""The parts of `predict` that decide without a network: frame names, why there is no camera, line
runs to draw, the overlay on a frame with its true camera, and the weights file's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from SoccerNet.Evaluation.utils_calibration import get_polylines

from contract.files import sha256_of
from contract.manifest import WeightsManifest
from trainer.data.synthetic.generate import generate
from trainer.evaluation.camera import MIN_POINTS
from trainer.inference.frames import frame_name, unique
from trainer.inference.outputs import keypoints_json, no_camera_reason
from trainer.inference.overlay import LINE_COLOUR, draw_overlay, polyline_runs
from trainer.inference.weights import WeightsError, WeightsMeta, load_network, read_weights, write_weights
from trainer.model.heads import KeypointNet


def test_frame_names_are_safe_and_unique() -> None:
    assert frame_name("00012") == "00012"
    assert frame_name("match day 1.final") == "match_day_1_final"
    assert frame_name("clip", 250) == "clip_000250"
    taken: set[str] = set()
    assert [unique("a", taken) for _ in range(3)] == ["a", "a-2", "a-3"]


def test_the_reason_for_no_camera_names_the_count() -> None:
    keypoints = np.zeros((57, 3))
    keypoints[:MIN_POINTS - 1, 2] = 0.9
    assert no_camera_reason(keypoints, 0.3) == f"{MIN_POINTS - 1} keypoints reach confidence 0.3; a camera needs 4"
    keypoints[:10, 2] = 0.9
    assert no_camera_reason(keypoints, 0.3).startswith("no plausible camera from 10 keypoints")


def test_keypoints_json_keeps_full_precision_and_nulls_what_is_not_finite() -> None:
    keypoints = np.array([[1 / 3, 2.0, 0.5], [np.nan, 1.0, 0.2]] + [[0.0, 0.0, 0.0]] * 55)
    encoded = json.loads(json.dumps(keypoints_json(keypoints)))
    assert encoded[0] == [1 / 3, 2.0, 0.5] and encoded[1] is None and len(encoded) == 57


def test_a_line_that_leaves_and_comes_back_is_two_runs() -> None:
    width, height = 960, 540
    points = np.array([[0.0, 100.0], [50.0, 110.0], [100.0, 120.0], [959.0, 200.0],  # enters, ..., exits right
                       [959.0, 300.0], [900.0, 310.0], [850.0, 320.0]])  # re-enters on the right edge
    runs = polyline_runs(points, width, height)
    assert [len(run) for run in runs] == [4, 3]
    assert np.array_equal(np.concatenate(runs), points)
    assert [len(run) for run in polyline_runs(points[:3], width, height)] == [3]


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict]:
    """A synthetic frame (RGB) and its true camera."""
    folder = tmp_path_factory.mktemp("frame")
    image_path = generate(folder, frames=1, seed=5)[0]
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    return image, json.loads(image_path.with_suffix(".camera.json").read_text())


def test_the_overlay_draws_the_cameras_pitch_lines_on_the_frame(frame: tuple[np.ndarray, dict]) -> None:
    image, camera = frame
    height, width = image.shape[:2]
    drawn = draw_overlay(image, np.zeros((57, 3)), camera, None, 0.3)
    assert drawn.shape == (height, width, 3)
    on_lines = [(int(round(p["x"])), int(round(p["y"])))
                for points in get_polylines(camera, width, height, 0.9).values() for p in points]
    inside = [(x, y) for x, y in on_lines if 30 < y < height - 1 and 0 <= x < width]  # below the banner
    assert len(inside) > 20
    yellow = np.array(LINE_COLOUR)
    near = [np.abs(drawn[y, x].astype(int) - yellow).max() < 60 for x, y in inside]
    assert np.mean(near) > 0.9
    without = draw_overlay(image, np.zeros((57, 3)), None, "2 keypoints reach confidence 0.3", 0.3)
    below = slice(40, None)
    assert np.array_equal(without[below], image[below, :, ::-1])  # no camera, no faint keypoint: frame untouched


def test_weights_round_trip_with_their_metadata(tmp_path: Path) -> None:
    net = KeypointNet("hrnet_w18_small")
    meta = WeightsMeta(arch="hrnet_w18_small", input_size=(256, 144), batch_size=4, step=12, epochs=3,
                       metrics={"val_evalai": 0.25})
    path = tmp_path / "w.pt"
    compiled = {f"_orig_mod.{k}": v for k, v in net.state_dict().items()}  # as torch.compile names them
    write_weights(path, compiled, meta, "val_evalai")
    loaded, read_meta = load_network(path)
    assert read_meta == meta
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert torch.load(path, weights_only=True)["format"] == 1
    manifest = WeightsManifest.read(tmp_path / "w.json")  # what the supervisor uploads and `runner pull` checks
    assert (manifest.size, manifest.sha256) == (path.stat().st_size, sha256_of(path))
    assert (manifest.step, manifest.epoch, manifest.metric, manifest.value) == (12, 3, "val_evalai", 0.25)
    write_weights(path, compiled, meta.model_copy(update={"step": 13}))
    final = WeightsManifest.read(tmp_path / "w.json")
    assert final.metric is None and final.step == 13 and final.sha256 == sha256_of(path)


def test_weights_problems_are_named(tmp_path: Path) -> None:
    net = KeypointNet("hrnet_w18_small")
    meta = WeightsMeta(arch="hrnet_w18_small", input_size=(256, 144))
    newer = tmp_path / "newer.pt"
    torch.save({"format": 2, "meta": meta.model_dump(mode="json"), "state_dict": net.state_dict()}, newer)
    with pytest.raises(WeightsError, match="weights format 2; this trainer reads 1"):
        read_weights(newer)
    invalid = tmp_path / "invalid.pt"
    torch.save({"format": 1, "meta": {"arch": "resnet50", "input_size": [256, 144]}, "state_dict": {}}, invalid)
    with pytest.raises(WeightsError, match="metadata is invalid: arch"):
        read_weights(invalid)
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    with pytest.raises(WeightsError, match="give --arch and --input-size"):
        read_weights(plain)
    assert read_weights(plain, legacy=meta).meta == meta
    with pytest.raises(WeightsError, match="no such file"):
        read_weights(tmp_path / "missing.pt")
