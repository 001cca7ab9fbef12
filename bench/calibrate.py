"""Camera estimation from predicted keypoints: ms/frame and challenge score, against the baseline.

    python bench/calibrate.py [--frames 200] [--noise 1] [--distortion 0.03] [--repeat 3]

Frames come from `trainer synth` with hand-click scatter and radial lens distortion (kept under
the temp folder, so a second run reuses them). Each frame's keypoints are what a trained model
predicts: the true camera's projection of the 57 points, lens included, inside the image, with
Gaussian scatter (--noise px), some true points missed, and in some frames a false peak (a true
point moved tens of pixels) or a stray point where no keypoint is. Both solvers get the very same
keypoints. Timing: one process, the whole camera step of every frame, best of --repeat rounds,
ours and the baseline interleaved so both see the same machine state. Score: the challenge's
(trainer/evaluation/challenge.py) against each frame's annotation: completeness, accuracy at
5/10/20 px over frames with a camera, and combined = completeness x accuracy@5. The baseline is
the solver as it was before issue 14 (bench/baselines/camera_multistart.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.baselines.camera_multistart import estimate_camera as baseline_estimate  # noqa: E402
from bench.common import ms_per_item_line, ours_against_baseline  # noqa: E402
from bench.keypoints import true_positions  # noqa: E402
from trainer.data.synthetic.generate import frame_paths, generate  # noqa: E402
from trainer.evaluation.camera import estimate_camera  # noqa: E402
from trainer.evaluation.challenge import frame_accuracies, summarise  # noqa: E402

W, H = 960, 540
THRESHOLDS = (5.0, 10.0, 20.0)
GOAL_MS = 2.0
MISS_RATE = 0.1
"""Share of points in the picture a model misses (confidence under the bar)."""
FALSE_PEAK_RATE = 0.3
"""Share of frames with one true point moved 20-120 px: a confident peak on the wrong pitch mark."""
STRAY_RATE = 0.2
"""Share of frames with one point that is not in the picture predicted somewhere in it."""


def predicted_keypoints(truth: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(57, 3) x, y, confidence as a decent model predicts them from a frame whose true positions are ``truth``."""
    with np.errstate(invalid="ignore"):
        inside = (truth[:, 0] >= 0) & (truth[:, 0] <= W - 1) & (truth[:, 1] >= 0) & (truth[:, 1] <= H - 1)
    out = np.zeros((len(truth), 3))
    out[inside, :2] = truth[inside] + rng.normal(0.0, noise, (int(inside.sum()), 2))
    out[inside, 2] = rng.uniform(0.5, 1.0, int(inside.sum()))
    out[inside & (rng.random(len(truth)) < MISS_RATE), 2] = rng.uniform(0.0, 0.25)
    visible = np.flatnonzero(out[:, 2] >= 0.5)
    if len(visible) and rng.random() < FALSE_PEAK_RATE:
        moved = rng.choice(visible)
        out[moved, :2] += rng.uniform(20.0, 120.0) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    hidden = np.flatnonzero(~inside)
    if len(hidden) and rng.random() < STRAY_RATE:
        out[rng.choice(hidden)] = [rng.uniform(0, W - 1), rng.uniform(0, H - 1), rng.uniform(0.3, 0.7)]
    return out


def load_frames(folder: Path, frames: int, seed: int, noise: float, distortion: float) -> list[tuple[dict, np.ndarray]]:
    """(annotation, predicted keypoints) of each frame, the keypoints drawn from a generator seeded by ``seed``."""
    generate(folder, frames, seed, W, H, click_noise=1.0, distortion=distortion)
    rng = np.random.default_rng(seed)
    out = []
    for index in range(frames):
        _, annotation_path, camera_path = frame_paths(folder, index)
        truth = true_positions(json.loads(camera_path.read_text()))
        out.append((json.loads(annotation_path.read_text()), predicted_keypoints(truth, rng, noise)))
    return out


def score(frames: list[tuple[dict, np.ndarray]], cameras: list[dict | None]) -> dict[str, float | int]:
    per_frame = [
        None if camera is None else frame_accuracies(camera, annotation, THRESHOLDS, W, H)
        for (annotation, _), camera in zip(frames, cameras)
    ]
    return summarise(per_frame, THRESHOLDS, product="combined")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--noise", type=float, default=1.0, help="keypoint scatter, px")
    parser.add_argument("--distortion", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="frames folder [a temp folder named by the options]")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.gettempdir()) / f"bench-keypoints-s{args.seed}-n1-k{args.distortion:g}"
    frames = load_frames(folder, args.frames, args.seed, args.noise, args.distortion)

    cameras, timings = ours_against_baseline(
        lambda keypoints: estimate_camera(keypoints, W, H), lambda keypoints: baseline_estimate(keypoints, W, H),
        [keypoints for _, keypoints in frames], args.repeat)
    ours, base = score(frames, cameras["ours"]), score(frames, cameras["baseline"])

    print(f"calibrate: {len(frames)} frames, keypoint noise {args.noise:g} px, radial k1 {args.distortion:g}")
    print(f"{'':<10} {'cameras':>8} {'complete':>9} {'acc@5':>7} {'acc@10':>7} {'acc@20':>7} {'combined':>9}")
    for name, result in (("ours", ours), ("baseline", base)):
        print(
            f"{name:<10} {result['frames'] - result['missed']:>8} {result['completeness']:>9.4f} "
            f"{result['accuracy@5']:>7.4f} {result['accuracy@10']:>7.4f} {result['accuracy@20']:>7.4f} "
            f"{result['combined']:>9.4f}"
        )
    best_ours = min(timings["ours"])
    print(ms_per_item_line(timings))
    verdict = "met" if best_ours <= GOAL_MS else f"NOT met ({best_ours / GOAL_MS:.2f}x over)"
    same = "met" if ours["combined"] >= base["combined"] else "NOT met"
    print(f"goals: <= {GOAL_MS:g} ms/frame {verdict}; combined score >= baseline's {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
