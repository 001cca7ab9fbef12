"""`python -m trainer predict` (issue 12.3, 12.4): weights from a real (tiny) training run, on
images, a folder and a video, with overlays; its keypoints and score are validation's; bad inputs
and bad weights are named in one line.

Tiny synthetic SoccerNet-format data, hrnet_w18_small at 128x72, CPU, two epochs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from contract.config import AttemptConfig
from contract.events import read_events
from contract.manifest import WeightsManifest
from trainer.data.loader import build_dataset, make_loader
from trainer.inference.weights import read_weights, write_weights
from trainer.model.metamodel import HeatmapModel
from trainer.training.metrics import ValidationMetrics

pytestmark = pytest.mark.e2e

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def trainer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True, env=ENV,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work dir after two epochs of training with validation: weights/final.pt and events.jsonl."""
    root = tmp_path_factory.mktemp("trained")
    for split, frames, seed in (("train", 8, 1), ("valid", 6, 2)):
        assert trainer("synth", str(root / split), "--frames", str(frames), "--seed", str(seed)).returncode == 0
    config = AttemptConfig.model_validate({
        "model": {"arch": "hrnet_w18_small"},
        "data": {"train_dir": str(root / "train"), "valid_dir": str(root / "valid"), "num_workers": 0},
        "rung": {"batch_size": 4, "input_size": [128, 72], "accumulation": 1},
        "train": {"lr": 1e-3, "max_epochs": 2, "amp": False, "device": "cpu", "deterministic": True, "seed": 7},
        "checkpoint": {"every_minutes": 60},
        "logging": {"progress_every_seconds": 0},
    })
    config.save(root / "config.yaml")
    result = trainer("train", "--config", str(root / "config.yaml"), "--workdir", str(root / "work"))
    assert result.returncode == 0, result.stderr
    return root


def last_epoch_metrics(root: Path) -> dict[str, float]:
    return [e for e in read_events(root / "work" / "events.jsonl") if e["kind"] == "epoch"][-1]["metrics"]


def keypoints_of(out: Path, frame: str) -> np.ndarray:
    document = json.loads((out / f"{frame}.keypoints.json").read_text())
    return np.array(document["keypoints"], dtype=np.float64)


def test_weights_carry_what_predict_needs(trained: Path) -> None:
    weights = read_weights(trained / "work" / "weights" / "final.pt")
    meta = weights.meta
    assert (meta.arch, meta.input_size, meta.stride, meta.num_keypoints) == ("hrnet_w18_small", (128, 72), 2, 57)
    assert meta.batch_size == 4  # validation's, predict's default
    assert meta.epochs == 2 and meta.step == 4
    assert meta.metrics["val_loss"] == last_epoch_metrics(trained)["val_loss"]
    best = read_weights(trained / "work" / "weights" / "best-val-loss.pt").meta
    assert best.epochs in (1, 2) and "val_loss" in best.metrics
    manifest = WeightsManifest.read(trained / "work" / "weights" / "best-val-loss.json")
    assert (manifest.metric, manifest.value, manifest.epoch) == ("val_loss", best.metrics["val_loss"], best.epochs)
    assert WeightsManifest.read(trained / "work" / "weights" / "final.json").metric is None


def test_predict_then_score_is_validations_score(trained: Path, tmp_path: Path) -> None:
    """The same weights on the same frames: predict + score gives the figures validation logged, and
    each frame's keypoints are the ones validation computed."""
    out = tmp_path / "pred"
    result = trainer("predict", str(trained / "work" / "weights" / "final.pt"), str(trained / "valid"),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "predict: 6 frames (0 inputs skipped)" in result.stdout and "frames/s on cpu" in result.stdout
    scored = trainer("score", str(out), str(trained / "valid"), "--json")
    assert scored.returncode == 0, scored.stderr
    score = json.loads(scored.stdout)
    validation = last_epoch_metrics(trained)
    assert score["frames"] == 6
    assert score["combined"] == pytest.approx(validation["val_evalai"], abs=1e-6)
    assert score["completeness"] == pytest.approx(validation["val_completeness"], abs=1e-6)
    assert score["accuracy@5"] == pytest.approx(validation["val_accuracy@5"], abs=1e-6)

    # Validation's own keypoints for these weights, through the trainer's validation step and metric.
    config = AttemptConfig.load(trained / "config.yaml")
    dataset = build_dataset(config.data.valid_dir, config.rung.input_size, train=False)
    model = HeatmapModel({"nn_module": {"arch": config.model.arch}, "optimizer": {"lr": 1e-3},
                          "loss": {"stride": 2, "sigma": 3.0}, "device": "cpu"})
    model.setup(amp=False, accumulation=1)
    model.nn_module.load_state_dict(read_weights(trained / "work" / "weights" / "final.pt").state_dict)
    metric = ValidationMetrics(dataset, config)
    metric.reset()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer and predict ran (OMP_NUM_THREADS=1): CPU sums follow the thread count
    try:
        for batch in make_loader(dataset, batch_size=config.rung.batch_size, seed=0, train=False, num_workers=0):
            metric.update(model.val_step(batch, None))
    finally:
        torch.set_num_threads(threads)
    assert metric.compute()["evalai"] == pytest.approx(validation["val_evalai"], abs=1e-6)
    for index, frame in enumerate(dataset.split.frames):
        np.testing.assert_allclose(keypoints_of(out, frame.frame_id), metric.predicted[index], rtol=0, atol=1e-6)


def write_video(frames: list[Path], path: Path, fps: float = 10.0) -> None:
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, first.shape[1::-1])
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()


def test_images_a_folder_and_a_video_with_overlays(trained: Path, tmp_path: Path) -> None:
    valid = sorted((trained / "valid").glob("*.jpg"))
    single = tmp_path / "single shot.png"  # another format, and a name that is not a safe file name
    cv2.imwrite(str(single), cv2.resize(cv2.imread(str(valid[0])), (640, 360)))
    video = tmp_path / "match.mp4"
    write_video(valid[:5], video)
    out = tmp_path / "pred"
    result = trainer("predict", str(trained / "work" / "weights" / "final.pt"), str(single), str(trained / "valid"),
                     str(video), "--out", str(out), "--every", "2", "--overlay", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert "predict: 10 frames (0 inputs skipped)" in result.stdout  # 1 image + 6 in the folder + frames 0, 2, 4

    names = sorted(p.name.removesuffix(".keypoints.json") for p in out.glob("*.keypoints.json"))
    assert names == sorted(["single_shot", *(p.stem for p in valid), "match_000000", "match_000002", "match_000004"])
    for name in names:
        document = json.loads((out / f"{name}.keypoints.json").read_text())
        assert len(document["keypoints"]) == 57 and all(len(k) == 3 for k in document["keypoints"])
        assert (document["camera"] is None) == isinstance(document["no_camera"], str)
        assert (out / f"camera_{name}.json").exists() == (document["camera"] is not None)
        overlay = cv2.imread(str(out / f"{name}.overlay.jpg"))
        assert overlay is not None and overlay.shape[1::-1] == (document["width"], document["height"])
    single_doc = json.loads((out / "single_shot.keypoints.json").read_text())
    assert (single_doc["width"], single_doc["height"], single_doc["index"]) == (640, 360, None)
    xy = np.array([k[:2] for k in single_doc["keypoints"]])
    assert (xy >= -0.5).all() and (xy[:, 0] <= 639.5).all() and (xy[:, 1] <= 359.5).all()  # in the frame's pixels
    assert json.loads((out / "match_000004.keypoints.json").read_text())["index"] == 4

    annotated = cv2.VideoCapture(str(out / "match.overlay.mp4"))
    assert annotated.isOpened() and annotated.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    count = 0
    while annotated.read()[0]:
        count += 1
    assert count == 3


def test_bad_inputs_are_named_skipped_and_counted(trained: Path, tmp_path: Path) -> None:
    good = sorted((trained / "valid").glob("*.jpg"))[0]
    broken_image = tmp_path / "broken.jpg"
    broken_image.write_bytes(good.read_bytes()[:100])
    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes(b"\x00" * 4096)
    missing = tmp_path / "missing.jpg"
    weights = str(trained / "work" / "weights" / "final.pt")
    result = trainer("predict", weights, str(broken_image), str(good), str(broken_video), str(missing),
                     "--out", str(tmp_path / "pred"))
    assert result.returncode == 0, result.stderr
    assert "predict: 1 frames (3 inputs skipped)" in result.stdout
    for path, why in ((broken_image, "the image does not decode"), (broken_video, "the video does not open"),
                      (missing, "no such file or folder")):
        assert sum(f"{path}: {why}" in line for line in result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr

    nothing = trainer("predict", weights, str(broken_image), str(broken_video), "--out", str(tmp_path / "none"))
    assert nothing.returncode == 2
    assert "predict: 0 frames (2 inputs skipped)" in nothing.stdout
    assert "no frame could be processed" in nothing.stderr


def test_bad_weights_are_one_line_naming_the_file(trained: Path, tmp_path: Path) -> None:
    final = trained / "work" / "weights" / "final.pt"
    frames = str(trained / "valid")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(final.read_bytes()[:5000])
    weights = read_weights(final)
    other_arch = tmp_path / "other.pt"
    write_weights(other_arch, weights.state_dict, weights.meta.model_copy(update={"arch": "hrnet_w18"}))
    plain = tmp_path / "plain.pt"
    torch.save(weights.state_dict, plain)
    cases = {
        truncated: "cannot be read as weights (truncated, corrupt or not a torch file)",
        other_arch: "does not fit hrnet_w18",
        plain: "a plain state dict without the metadata (arch, input size)",
    }
    for path, message in cases.items():
        result = trainer("predict", str(path), frames, "--out", str(tmp_path / "pred"))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"predict: {path}: ") and message in lines[0], result.stderr
    legacy = trainer("predict", str(plain), frames, "--out", str(tmp_path / "legacy"),
                     "--arch", "hrnet_w18_small", "--input-size", "128", "72")
    assert legacy.returncode == 0, legacy.stderr
    reference = tmp_path / "reference"
    assert trainer("predict", str(final), frames, "--out", str(reference)).returncode == 0
    for path in reference.glob("*.keypoints.json"):
        assert path.read_text() == (tmp_path / "legacy" / path.name).read_text()


@pytest.mark.gpu
def test_predict_on_cuda_with_amp(trained: Path, tmp_path: Path) -> None:
    """The GPU path: batched, float16 autocast, probabilities in float32; finite keypoints in the frame."""
    out = tmp_path / "pred"
    result = trainer("predict", str(trained / "work" / "weights" / "final.pt"), str(trained / "valid"),
                     "--out", str(out), "--device", "cuda")
    assert result.returncode == 0, result.stderr
    assert "predict: 6 frames" in result.stdout and "frames/s on cuda" in result.stdout
    for path in out.glob("*.keypoints.json"):
        keypoints = np.array(json.loads(path.read_text())["keypoints"], dtype=np.float64)
        assert np.isfinite(keypoints).all() and (keypoints[:, 2] <= 1.0).all()
        assert (keypoints[:, 0] > -1).all() and (keypoints[:, 0] < 960).all()
