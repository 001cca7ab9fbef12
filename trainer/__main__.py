"""`python -m trainer`: the trainer's command line.

One argparse sub-command per job (synth, keypoints, prepare, calibrate, score, predict, train), so the
runner starts every part of the trainer the same way and each part stays testable alone. Every
command's arguments and output live here; the rooms below hold only library functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import get_args

from contract.config import Arch
from trainer.data.cache import load_keypoints
from trainer.data.download import DownloadError
from trainer.data.keypoints.table import INVISIBLE, UNKNOWN, VISIBLE, keypoints_to_json
from trainer.data.prepare import DataNotFound, cache_plan, prepare, prepare_keypoints
from trainer.data.soccernet import read_split
from trainer.data.synthetic.generate import generate
from trainer.evaluation.camera import DEFAULT_MIN_CONFIDENCE
from trainer.evaluation.challenge import CHALLENGE_THRESHOLD_PX
from trainer.parallel import available_cpus
from trainer.evaluation.scoring import DEFAULT_THRESHOLDS, calibrate_file, score_folder


def _click_noise(text: str) -> float:
    """argparse type: a standard deviation in px, ≥ 0."""
    value = float(text)
    if not 0.0 <= value <= 20.0:
        raise argparse.ArgumentTypeError(f"--click-noise must be between 0 and 20 px, got {text}")
    return value


def _distortion(text: str) -> float:
    """argparse type: radial k1 of a broadcast lens; beyond ±0.2 the lens model folds over."""
    value = float(text)
    if not -0.2 <= value <= 0.2:
        raise argparse.ArgumentTypeError(f"--distortion (radial k1) must be between -0.2 and 0.2, got {text}")
    return value


def _synth(args: argparse.Namespace) -> int:
    before = {p.name for p in Path(args.dir).glob("*.jpg")} if Path(args.dir).is_dir() else set()
    images = generate(
        Path(args.dir), args.frames, args.seed, args.width, args.height,
        click_noise=args.click_noise, distortion=args.distortion,
    )
    reused = sum(p.name in before for p in images)
    print(f"synth: {len(images) - reused} frames written, {reused} already present, in {args.dir}")
    return 0


def _keypoints(args: argparse.Namespace) -> int:
    split = read_split(args.dir)
    keypoints, stats = load_keypoints(split, size=(args.width, args.height))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for frame, kps in zip(split.frames, keypoints):
            sink.write(json.dumps({"frame": frame.frame_id, "keypoints": keypoints_to_json(kps)}) + "\n")
    states = keypoints[..., 2]
    print(
        f"keypoints: {len(split.frames)} frames ({split.skipped.frames_skipped} skipped, "
        f"{split.skipped.lines_skipped} lines dropped; {stats.reused} from cache), visible "
        f"{int((states == VISIBLE).sum())}, invisible {int((states == INVISIBLE).sum())}, "
        f"unknown {int((states == UNKNOWN).sum())} -> {out}"
    )
    return 0


def _prepare(args: argparse.Namespace) -> int:
    options = {"frames": args.frames, "valid_frames": args.valid_frames, "seed": args.seed}
    if args.plan:
        name, files = cache_plan(args.source, args.root, args.train_split, args.valid_split, **options)
        print(json.dumps({"cache": name, "files": [
            {"name": f.name, "path": str(f.path), "needed": f.needed, "folder": f.folder} for f in files]}))
        return 0
    try:
        dirs = prepare(args.source, args.root, args.train_split, args.valid_split, **options)
        keypoints = prepare_keypoints(dirs)
    except (DataNotFound, DownloadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({**{name: str(path) for name, path in dirs.items()}, "keypoints": keypoints}))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    if not args.keypoints.is_file():
        print(f"calibrate: {args.keypoints} is not a file", file=sys.stderr)
        return 2
    counts = calibrate_file(args.keypoints, args.out, args.width, args.height, args.min_confidence, args.workers)
    print(
        f"calibrate: {counts['frames']} frames, {counts['cameras']} cameras written, "
        f"{counts['without_camera']} without a plausible camera, {counts['malformed']} malformed lines -> {args.out}"
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    for folder in (args.pred_dir, args.gt_dir):
        if not folder.is_dir():
            print(f"score: {folder} is not a folder", file=sys.stderr)
            return 2
    thresholds = (args.threshold, *(t for t in DEFAULT_THRESHOLDS if t != args.threshold))
    result = score_folder(args.pred_dir, args.gt_dir, thresholds, args.width, args.height, args.workers)
    if result["frames"] == 0:
        print(f"score: no readable NNNNN.json annotations in {args.gt_dir}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("frames", str(result["frames"])), ("missed", str(result["missed"]))]
    rows += [(key, f"{value:.4f}") for key, value in result.items() if key not in ("frames", "missed", "combined")]
    rows.append((f"combined (completeness x accuracy@{args.threshold:g})", f"{result['combined']:.4f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    # torch loads only for predict; the camera pool's workers re-import this module
    from trainer.inference.predict import predict
    from trainer.inference.weights import WeightsError, WeightsMeta

    if (args.arch is None) != (args.input_size is None):
        print("predict: --arch and --input-size go together (for a plain state dict)", file=sys.stderr)
        return 2
    try:
        legacy = WeightsMeta(arch=args.arch, input_size=tuple(args.input_size)) if args.arch else None
        summary = predict(args.weights, args.inputs, args.out, every=args.every, overlay=args.overlay,
                          batch_size=args.batch_size, device=args.device, workers=args.workers, legacy=legacy)
    except (WeightsError, ValueError) as error:
        print(f"predict: {error}", file=sys.stderr)
        return 2
    print(f"predict: {summary.line()} -> {args.out}")
    if summary.frames == 0:
        print("predict: no frame could be processed", file=sys.stderr)
        return 2
    return 0


def _train(args: argparse.Namespace) -> int:
    # torch and the data stack load only for training
    from contract.config import AttemptConfig
    from trainer.training.distributed import launch
    from trainer.training.loop import run_training

    if args.nproc_per_node > 1:  # the launcher: each rank runs this command without the option
        rank_args = ["train", "--config", str(args.config), "--workdir", str(args.workdir)]
        rank_args += ["--resume", str(args.resume)] if args.resume else []
        device = AttemptConfig.load(args.config).train.device
        return launch(rank_args, args.nproc_per_node, args.workdir, device)
    return run_training(args.config, args.workdir, args.resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="render synthetic SoccerNet-format frames")
    synth.add_argument("dir", help="output folder for NNNNN.jpg / .json / .camera.json")
    synth.add_argument("--frames", type=int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--width", type=int, default=960)
    synth.add_argument("--height", type=int, default=540)
    synth.add_argument(
        "--click-noise", type=_click_noise, default=0.0, metavar="PX",
        help="extra Gaussian scatter of the clicks, px (real annotations: about 1) [0]",
    )
    synth.add_argument(
        "--distortion", type=_distortion, default=0.0, metavar="K1",
        help="radial lens distortion k1, written to each NNNNN.camera.json (real broadcasts: about 0.03) [0]",
    )
    synth.set_defaults(run=_synth)

    keypoints = commands.add_parser("keypoints", help="derive the 57 keypoints of each frame's annotation")
    keypoints.add_argument("dir", help="folder of SoccerNet NNNNN.json annotations")
    keypoints.add_argument("--out", required=True, help="JSON-lines file: one {frame, keypoints} per frame")
    keypoints.add_argument("--width", type=int, default=960)
    keypoints.add_argument("--height", type=int, default=540)
    keypoints.set_defaults(run=_keypoints)

    prep = commands.add_parser("prepare", help="make a job's data ready: render, download or check it")
    prep.add_argument("--source", choices=["soccernet", "synthetic", "path"], required=True)
    prep.add_argument("--root", type=Path, required=True)
    prep.add_argument("--train-split", default="train")
    prep.add_argument("--valid-split", default="valid")
    prep.add_argument("--frames", type=int, default=0, help="synthetic: train frames")
    prep.add_argument("--valid-frames", type=int, default=0, help="synthetic: valid frames")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--plan", action="store_true",
                      help="change nothing: print which files a store's data cache could provide and which "
                           "are missing here")
    prep.set_defaults(run=_prepare)

    calibrate = commands.add_parser("calibrate", help="estimate cameras (SoccerNet JSON) from keypoints")
    calibrate.add_argument(
        "keypoints", type=Path, help='JSON lines: {"frame": "00012", "keypoints": [57 x [x, y(, conf)] or null]}'
    )
    calibrate.add_argument("--out", type=Path, required=True, help="folder for camera_<frame>.json")
    calibrate.add_argument("--width", type=int, default=960, help="image width the keypoints are in pixels of")
    calibrate.add_argument("--height", type=int, default=540)
    calibrate.add_argument(
        "--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
        help=f"ignore keypoints less confident than this (default {DEFAULT_MIN_CONFIDENCE})",
    )
    calibrate.add_argument(
        "--workers", type=int, default=None, help=f"processes (default: the CPUs, {available_cpus()})"
    )
    calibrate.set_defaults(run=_calibrate)

    score = commands.add_parser("score", help="score camera predictions against annotations (challenge metric)")
    score.add_argument("pred_dir", type=Path, help="folder of camera_NNNNN.json predictions")
    score.add_argument("gt_dir", type=Path, help="folder of NNNNN.json annotations")
    score.add_argument(
        "--threshold", type=float, default=CHALLENGE_THRESHOLD_PX,
        help="pixels at 960x540 for the combined score (default 5, the challenge's); 10 and 20 px are shown too",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    score.add_argument("--width", type=int, default=960)
    score.add_argument("--height", type=int, default=540)
    score.add_argument("--workers", type=int, default=None, help=f"processes (default: the CPUs, {available_cpus()})")
    score.set_defaults(run=_score)

    pred = commands.add_parser(
        "predict", help="keypoints, cameras (SoccerNet JSON) and overlays for images, folders or videos")
    pred.add_argument("weights", type=Path, help="a weights file of `train` (W/weights/*.pt, or `runner pull`)")
    pred.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                      help="image files, folders of images, video files")
    pred.add_argument("--out", type=Path, required=True,
                      help="folder for NAME.keypoints.json, camera_NAME.json (what `score` reads), overlays")
    pred.add_argument("--every", type=int, default=1, help="videos: every Nth frame (default 1: all)")
    pred.add_argument("--overlay", action="store_true",
                      help="also NAME.overlay.jpg (pitch lines and keypoints on the frame), STEM.overlay.mp4 per video")
    pred.add_argument("--batch-size", type=int, default=None,
                      help="frames per forward pass (default: validation's, from the weights)")
    pred.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    pred.add_argument("--workers", type=int, default=None,
                      help=f"processes for the cameras (default: the CPUs, {available_cpus()})")
    pred.add_argument("--arch", choices=list(get_args(Arch)), default=None,
                      help="only for a plain state dict from before weights carried their metadata")
    pred.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                      help="only for a plain state dict: the input size it was trained at")
    pred.set_defaults(run=_predict)

    train = commands.add_parser("train", help="train the keypoint model (the runner's attempt contract)")
    train.add_argument("--config", type=Path, required=True, help="resolved attempt config (YAML)")
    train.add_argument("--workdir", type=Path, required=True, help="where checkpoints, events and logs go")
    train.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    train.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                       help="N > 1: launch N ranks with torchrun (one per GPU; CPU processes with train.device: cpu)")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
