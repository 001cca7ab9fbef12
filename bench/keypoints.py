"""Keypoint derivation on realistic annotations: ms/frame and error by kind, against the baseline.

    python bench/keypoints.py [--frames 200] [--click-noise 1] [--distortion 0.03] [--repeat 3]
    python bench/keypoints.py --split 16463     # also a whole train split, the product's way

Frames come from `trainer synth` with hand-click scatter and radial lens distortion (kept under
the temp folder, so a second run reuses them). The truth is each frame's true camera projecting
the 57 pitch points WITH its distortion: where the keypoint really is in the picture. For each
keypoint kind: median and p90 pixel error of the points derived as visible, recall (truly
visible points, 3 px inside the image, derived as visible) and precision (points derived as
visible that are within 10 px of where the point truly is: an invented point counts against it). Timing: one process, the whole
derivation of every frame, best of --repeat rounds, ours and the baseline interleaved so both
see the same machine state. The baseline is the derivation as of "kp57-derive-1"
(bench/baselines/keypoints_v1_*.py).

``--split N`` then times a split of N frames (the bench's annotations cycled) through the product's
own path, ``trainer.data.cache.load_keypoints`` with no cache: a process pool over every CPU this
process may use, as a session preparing its data does. Its baseline is the same N frames in one
process, from ours' measured ms/frame above.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from SoccerNet.Evaluation.utils_calibration import Camera  # noqa: E402

from bench.baselines.keypoints_v1_derivation import derive_keypoints as baseline_derive  # noqa: E402
from bench.common import ms_per_item_line, ours_against_baseline  # noqa: E402
from trainer.data.cache import load_keypoints  # noqa: E402
from trainer.data.keypoints.derivation import derive_keypoints  # noqa: E402
from trainer.data.soccernet import Frame, SkipReport, SplitData  # noqa: E402
from trainer.data.keypoints.table import KEYPOINTS, NUM_KEYPOINTS, VISIBLE, XYZ  # noqa: E402
from trainer.data.synthetic.generate import frame_paths, generate  # noqa: E402
from trainer.parallel import available_cpus  # noqa: E402

W, H = 960, 540
INSIDE_PX = 3.0
"""Recall counts points at least this far inside the image: at the border, visible or not is a coin toss."""
KINDS = sorted({kp.kind for kp in KEYPOINTS})
PRECISE_PX = 10.0
"""A point derived as visible counts as right when it is this close to the truth (NaN truth: behind the camera)."""
GOALS = {"median": 1.6, "p90": 5.0, "recall": 0.97, "ms": 11.0}


def true_positions(camera_json: dict) -> np.ndarray:
    """(57, 2) where the true camera, lens included, images each point; NaN behind the camera."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    out = np.full((NUM_KEYPOINTS, 2), np.nan)
    for index, xyz in enumerate(XYZ):
        p = camera.project_point(xyz)
        if p[2] != 0:
            out[index] = p[:2]
    return out


def load_frames(folder: Path, frames: int, seed: int, click_noise: float, distortion: float) -> list[tuple[dict, np.ndarray]]:
    generate(folder, frames, seed, W, H, click_noise=click_noise, distortion=distortion)
    out = []
    for index in range(frames):
        _, annotation_path, camera_path = frame_paths(folder, index)
        out.append((json.loads(annotation_path.read_text()), true_positions(json.loads(camera_path.read_text()))))
    return out


def split_seconds(frames: list[tuple[dict, np.ndarray]], count: int, folder: Path) -> float:
    """Wall seconds for ``load_keypoints`` to derive a split of ``count`` frames, every one missing
    from the cache (each gets its own name and sha1, so nothing is reused)."""
    annotations = [annotation for annotation, _ in frames]
    split = SplitData(root=folder, skipped=SkipReport(), frames=[
        Frame(f"{i:06d}", folder / f"{i:06d}.jpg", annotations[i % len(annotations)], f"{i:040x}")
        for i in range(count)
    ])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        load_keypoints(split, size=(W, H), cache_path=Path(tmp) / "cache.npz")
        return time.perf_counter() - start


def scores(frames: list[tuple[dict, np.ndarray]], derived: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Per kind: median / p90 / max error of derived visible points that are truly in the picture, recall, precision."""
    errors: dict[str, list[float]] = {k: [] for k in KINDS}
    hits: dict[str, list[bool]] = {k: [] for k in KINDS}
    right: dict[str, list[bool]] = {k: [] for k in KINDS}
    for (_, truth), kps in zip(frames, derived):
        with np.errstate(invalid="ignore"):
            inside = (truth[:, 0] >= 0) & (truth[:, 0] <= W - 1) & (truth[:, 1] >= 0) & (truth[:, 1] <= H - 1)
            well_inside = (truth[:, 0] >= INSIDE_PX) & (truth[:, 0] <= W - 1 - INSIDE_PX)
            well_inside &= (truth[:, 1] >= INSIDE_PX) & (truth[:, 1] <= H - 1 - INSIDE_PX)
        for kp in KEYPOINTS:
            visible = kps[kp.index, 2] == VISIBLE
            error = float(np.hypot(*(kps[kp.index, :2] - truth[kp.index])))
            if visible and inside[kp.index]:
                errors[kp.kind].append(error)
            if visible:
                right[kp.kind].append(error <= PRECISE_PX)
            if well_inside[kp.index]:
                hits[kp.kind].append(bool(visible))
    out = {}
    for kind in KINDS:
        e = np.array(errors[kind]) if errors[kind] else np.array([np.nan])
        out[kind] = {
            "n": len(errors[kind]),
            "median": float(np.median(e)),
            "p90": float(np.percentile(e, 90)),
            "max": float(e.max()),
            "over10": int((e > 10.0).sum()),
            "recall": float(np.mean(hits[kind])) if hits[kind] else float("nan"),
            "precision": float(np.mean(right[kind])) if right[kind] else float("nan"),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--click-noise", type=float, default=1.0)
    parser.add_argument("--distortion", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="frames folder [a temp folder named by the options]")
    parser.add_argument("--split", type=int, default=0, metavar="N", help="also time a split of N frames on every CPU")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.gettempdir()) / (
        f"bench-keypoints-s{args.seed}-n{args.click_noise:g}-k{args.distortion:g}"
    )
    frames = load_frames(folder, args.frames, args.seed, args.click_noise, args.distortion)

    results, timings = ours_against_baseline(
        lambda annotation: derive_keypoints(annotation, W, H, resolve_ambiguity=False),
        lambda annotation: baseline_derive(annotation, W, H, resolve_ambiguity=False),
        [annotation for annotation, _ in frames], args.repeat)
    ours, base = scores(frames, results["ours"]), scores(frames, results["baseline"])

    print(f"keypoints: {len(frames)} frames, click noise {args.click_noise:g} px, radial k1 {args.distortion:g}")
    header = f"{'kind':<14} {'n':>5} {'median':>13} {'p90':>13} {'max':>15} {'>10px':>9} {'recall':>13} {'precision':>13}"
    print(header + "   (ours / baseline)")
    for kind in KINDS:
        o, b = ours[kind], base[kind]
        print(
            f"{kind:<14} {o['n']:>5} {o['median']:>6.3f}/{b['median']:<6.3f} {o['p90']:>6.2f}/{b['p90']:<6.2f} "
            f"{o['max']:>7.1f}/{b['max']:<7.1f} {o['over10']:>4}/{b['over10']:<4} "
            f"{o['recall']:>6.3f}/{b['recall']:<6.3f} {o['precision']:>6.3f}/{b['precision']:<6.3f}"
        )
    best_ours = min(timings["ours"])
    print(ms_per_item_line(timings, digits=1))
    met = {
        "median": all(ours[k]["median"] <= GOALS["median"] for k in KINDS),
        "p90": all(ours[k]["p90"] <= GOALS["p90"] for k in KINDS),
        "recall": all(ours[k]["recall"] >= GOALS["recall"] for k in KINDS),
        "ms": best_ours <= GOALS["ms"],
    }
    print("goals (median <= 1.6 px, p90 <= 5 px, recall >= 0.97 every kind; <= 11 ms/frame): " + ", ".join(
        f"{name} {'met' if ok else 'NOT met'}" for name, ok in met.items()
    ))
    if args.split:
        seconds = split_seconds(frames, args.split, folder)
        serial = best_ours * args.split / 1000.0
        print(f"split of {args.split} frames on {available_cpus()} CPUs: {seconds:.1f} s; one process: {serial:.1f} s "
              f"(from ms/frame above), ratio {serial / seconds:.2f}x; goal 16,463 frames on 2 cores in < 120 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
