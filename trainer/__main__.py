"""`python -m trainer`: the trainer's command line.

One argparse sub-command per job (synth, keypoints, prepare, train, ...), so the runner starts
every part of the trainer the same way and each part stays testable alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from trainer.data.cache import load_keypoints
from trainer.data.keypoints import INVISIBLE, UNKNOWN, VISIBLE, keypoints_to_json
from trainer.data.prepare import DataNotFound, prepare
from trainer.data.soccernet import DownloadError, read_split
from trainer.data.synthetic import generate
from trainer.scoring import calibrate_add_arguments, calibrate_run, score_add_arguments, score_run


def _synth(args: argparse.Namespace) -> int:
    before = {p.name for p in Path(args.dir).glob("*.jpg")} if Path(args.dir).is_dir() else set()
    images = generate(Path(args.dir), args.frames, args.seed, args.width, args.height)
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
    try:
        dirs = prepare(args.source, args.root, args.train_split, args.valid_split,
                       frames=args.frames, valid_frames=args.valid_frames, seed=args.seed)
    except (DataNotFound, DownloadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: str(path) for name, path in dirs.items()}))
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.train import main as train_main  # torch and the data stack load only for training

    return train_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="render synthetic SoccerNet-format frames")
    synth.add_argument("dir", help="output folder for NNNNN.jpg / .json / .camera.json")
    synth.add_argument("--frames", type=int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--width", type=int, default=960)
    synth.add_argument("--height", type=int, default=540)
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
    prep.set_defaults(run=_prepare)

    calibrate = commands.add_parser("calibrate", help="estimate cameras (SoccerNet JSON) from keypoints")
    calibrate_add_arguments(calibrate)
    calibrate.set_defaults(run=calibrate_run)

    score = commands.add_parser("score", help="score camera predictions against annotations (challenge metric)")
    score_add_arguments(score)
    score.set_defaults(run=score_run)

    train = commands.add_parser("train", help="train the keypoint model (the runner's attempt contract)")
    train.add_argument("--config", type=Path, required=True, help="resolved attempt config (YAML)")
    train.add_argument("--workdir", type=Path, required=True, help="where checkpoints, events and logs go")
    train.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
