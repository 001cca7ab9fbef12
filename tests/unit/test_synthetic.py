"""Synthetic SoccerNet frames: real format, true cameras that SoccerNet's own evaluator accepts,
deterministic per (seed, frame), resumable generation, and the `python -m trainer` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from SoccerNet.Evaluation.utils_calibration import (
    Camera,
    SoccerPitch,
    evaluate_camera_prediction,
    get_polylines,
    scale_points,
)

from trainer.data.synthetic import frame_paths, generate, render_frame

W, H = 960, 540
REPO = Path(__file__).resolve().parents[2]


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


def test_render_is_fast_enough() -> None:
    times = []
    for i in range(6):
        start = time.perf_counter()
        render_frame(np.random.default_rng([3, i]), W, H)
        times.append(time.perf_counter() - start)
    print(f"render: median {1000 * np.median(times):.0f} ms per {W}x{H} frame")
    assert np.median(times) < 0.25  # target ~60 ms on one core; loose for busy CI machines


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    a = render_frame(np.random.default_rng([1, 0]))
    b = render_frame(np.random.default_rng([1, 0]))
    c = render_frame(np.random.default_rng([2, 0]))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]
    assert a[1] != c[1]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_generate_is_deterministic_and_resumable(tmp_path: Path) -> None:
    full = tmp_path / "full"
    images = generate(full, frames=4, seed=8, width=W, height=H)
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(4)]
    reference = _contents(full)
    assert sorted(reference) == sorted(
        f"{i:05d}{suffix}" for i in range(4) for suffix in (".jpg", ".json", ".camera.json")
    )

    again = tmp_path / "again"
    generate(again, frames=4, seed=8, width=W, height=H)
    assert _contents(again) == reference

    # Frames 2..3 alone come out the same as in the full run.
    part = tmp_path / "part"
    generate(part, frames=2, seed=8, width=W, height=H, start_index=2)
    assert _contents(part) == {k: v for k, v in reference.items() if k[:5] in ("00002", "00003")}

    # An incomplete frame is redone; complete ones are left alone.
    frame_paths(full, 1)[1].unlink()
    stamp = os.stat(frame_paths(full, 0)[0]).st_mtime_ns
    generate(full, frames=4, seed=8, width=W, height=H)
    assert _contents(full) == reference
    assert os.stat(frame_paths(full, 0)[0]).st_mtime_ns == stamp

    other = tmp_path / "other"
    generate(other, frames=1, seed=9, width=W, height=H)
    assert (other / "00000.json").read_bytes() != reference["00000.json"]


def test_cli_synth_then_keypoints(tmp_path: Path) -> None:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    data = tmp_path / "synth"
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "synth", str(data), "--frames", "3", "--seed", "4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "3 frames written" in run.stdout
    (data / "00007.json").write_text("{not json")

    out = tmp_path / "kp.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "keypoints", str(data), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "00007.json" in run.stderr and "warning" in run.stderr.lower()
    assert "3 frames (1 skipped" in run.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in rows] == ["00000", "00001", "00002"]
    for row in rows:
        assert len(row["keypoints"]) == 57
        visible = [p for p in row["keypoints"] if p is not None]
        assert len(visible) >= 4
        assert all(-3.0 <= x <= W + 2.0 and -3.0 <= y <= H + 2.0 for x, y in visible)
