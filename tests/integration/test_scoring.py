"""Scoring folders of cameras, and the calibrate/score commands, on synthetic frames."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from SoccerNet.Evaluation.utils_calibration import Camera, get_polylines

from trainer.__main__ import main
from trainer.data.keypoints.table import XYZ
from trainer.data.synthetic.generate import generate
from trainer.evaluation.scoring import score_folder

W, H = 960, 540
FRAMES = 10


def true_keypoints(camera_json: dict) -> list[list[float] | None]:
    """The keypoints JSON of a frame: the true camera's projection of each point inside the image."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    out: list[list[float] | None] = []
    for xyz in XYZ:
        p = camera.project_point(xyz)
        inside = p[2] > 0 and 0 <= p[0] <= W - 1 and 0 <= p[1] <= H - 1
        out.append([float(p[0]), float(p[1])] if inside else None)
    return out


def exact_annotation(camera_json: dict) -> dict:
    """Vertices of the camera's own projected lines: an annotation its camera scores 1.0 on."""
    lines = get_polylines(camera_json, W, H, sampling_factor=0.9)
    return {
        name: [{"x": p["x"] / (W - 1), "y": p["y"] / (H - 1)} for p in points[:: max(1, len(points) // 6)]]
        for name, points in lines.items()
    }


def cameras(folder: Path) -> dict[str, dict]:
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(folder.glob("*.camera.json"))}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as `python -m trainer synth` writes it: NNNNN.jpg, NNNNN.json, NNNNN.camera.json."""
    folder = tmp_path_factory.mktemp("synthetic")
    generate(folder, FRAMES, seed=3, width=W, height=H)
    return folder


@pytest.fixture
def exact(tmp_path: Path, synthetic: Path) -> tuple[Path, Path]:
    """(predictions, annotations): the true cameras as predictions, annotations they fit exactly."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for frame, camera_json in cameras(synthetic).items():
        (pred / f"camera_{frame}.json").write_text(json.dumps(camera_json))
        (gt / f"{frame}.json").write_text(json.dumps(exact_annotation(camera_json)))
        (gt / f"{frame}.camera.json").write_text(json.dumps(camera_json))
    (gt / "match_info.json").write_text("{not even json")
    return pred, gt


def test_true_cameras_score_combined_one(exact: tuple[Path, Path]) -> None:
    pred, gt = exact
    result = score_folder(pred, gt, workers=1)
    assert result == {
        "frames": FRAMES, "missed": 0, "completeness": 1.0,
        "accuracy@5": 1.0, "accuracy@10": 1.0, "accuracy@20": 1.0, "combined": 1.0,
    }


def test_missing_and_corrupt_predictions_are_missed_and_corrupt_annotations_left_out(
    exact: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    pred, gt = exact
    (pred / "camera_00000.json").unlink()
    (pred / "camera_00001.json").write_text("{broken")
    (pred / "camera_00002.json").write_text(json.dumps({"pan_degrees": 1.0}))
    (gt / "00009.json").write_text("[1, 2")
    with caplog.at_level(logging.WARNING):
        result = score_folder(pred, gt, workers=1)
    assert result["frames"] == FRAMES - 1 and result["missed"] == 3
    assert result["completeness"] == pytest.approx(6 / 9)
    assert result["accuracy@5"] == 1.0 and result["combined"] == pytest.approx(6 / 9)
    warned = caplog.text
    assert "00009.json" in warned and "camera_00001.json" in warned and "camera_00002.json" in warned
    assert "match_info" not in warned


def test_a_wrong_camera_scores_less(exact: tuple[Path, Path]) -> None:
    pred, gt = exact
    path = pred / "camera_00004.json"
    camera_json = json.loads(path.read_text())
    camera_json["pan_degrees"] += 2.0
    path.write_text(json.dumps(camera_json))
    result = score_folder(pred, gt, workers=1)
    assert result["completeness"] == 1.0 and result["accuracy@5"] < 1.0


def test_score_command_prints_a_table_or_json(exact: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = exact
    assert main(["score", str(pred), str(gt), "--workers", "1"]) == 0
    table = capsys.readouterr().out
    assert "completeness" in table and "accuracy@20" in table and "combined" in table and "1.0000" in table
    argv = ["score", str(pred), str(gt), "--json", "--threshold", "10", "--workers", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["combined"] == 1.0 and set(result) >= {"accuracy@5", "accuracy@10", "accuracy@20"}
    assert main(["score", str(pred / "absent"), str(gt)]) == 2


def test_calibrate_then_score_from_exact_keypoints(
    tmp_path: Path, synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """annotations → keypoints → cameras → score, on the generator's own annotations."""
    lines = [json.dumps({"frame": f, "keypoints": true_keypoints(c)}) for f, c in cameras(synthetic).items()]
    lines.append(json.dumps({"frame": "99999", "keypoints": [None] * 57}))  # nothing to solve from
    lines.append(json.dumps({"frame": "../escape", "keypoints": [None] * 57}))  # malformed: a path
    lines.append("{not json")
    keypoints = tmp_path / "keypoints.jsonl"
    keypoints.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cameras"
    out.mkdir()
    (out / "camera_99999.json").write_text("{}")  # stale, from an earlier run
    assert main(["calibrate", str(keypoints), "--out", str(out), "--workers", "1"]) == 0
    summary = capsys.readouterr().out
    assert f"{FRAMES + 1} frames, {FRAMES} cameras written, 1 without" in summary and "2 malformed" in summary
    assert sorted(p.name for p in out.iterdir()) == sorted(f"camera_{f}.json" for f in cameras(synthetic))
    gt = tmp_path / "gt"
    shutil.copytree(synthetic, gt)
    assert main(["score", str(out), str(gt), "--json", "--workers", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == FRAMES and result["completeness"] == 1.0
    assert result["combined"] >= 0.95  # synthetic annotations omit stubs under 12 px


def test_annotations_to_keypoints_to_cameras_to_score(
    tmp_path: Path, synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole chain a person runs, with keypoints derived from the annotations (not exact)."""
    keypoints, out = tmp_path / "keypoints.jsonl", tmp_path / "cameras"
    assert main(["keypoints", str(synthetic), "--out", str(keypoints)]) == 0
    assert main(["calibrate", str(keypoints), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["score", str(out), str(synthetic), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == FRAMES
    assert result["completeness"] >= 0.8 and result["accuracy@5"] >= 0.9
