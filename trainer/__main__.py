"""`python -m trainer`: the trainer's command line.

One argparse sub-command per job (synth, keypoints now; train, calibrate, score later), so the
runner starts every part of the trainer the same way and each part stays testable alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.data.keypoints import INVISIBLE, UNKNOWN, VISIBLE, derive_keypoints, keypoints_to_json
from trainer.data.synthetic import generate


def iter_annotations(directory: Path) -> Iterator[tuple[str, dict | None]]:
    """(stem, annotation) per SoccerNet frame JSON (``NNNNN.json``) in name order.

    An unreadable or malformed file yields None after a warning on stderr, so one bad file among
    thousands is counted rather than ending the run.
    """
    for path in sorted(Path(directory).glob("*.json")):
        if not path.stem.isdigit():
            continue
        try:
            annotation = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            print(f"warning: skipping {path}: {error}", file=sys.stderr)
            yield path.stem, None
            continue
        if not isinstance(annotation, dict):
            print(f"warning: skipping {path}: not a JSON object", file=sys.stderr)
            yield path.stem, None
            continue
        yield path.stem, annotation


def _synth(args: argparse.Namespace) -> int:
    before = {p.name for p in Path(args.dir).glob("*.jpg")} if Path(args.dir).is_dir() else set()
    images = generate(Path(args.dir), args.frames, args.seed, args.width, args.height)
    reused = sum(p.name in before for p in images)
    print(f"synth: {len(images) - reused} frames written, {reused} already present, in {args.dir}")
    return 0


def _keypoints(args: argparse.Namespace) -> int:
    counts = {VISIBLE: 0, INVISIBLE: 0, UNKNOWN: 0}
    frames = skipped = 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for stem, annotation in iter_annotations(Path(args.dir)):
            if annotation is None:
                skipped += 1
                continue
            kps = derive_keypoints(annotation, args.width, args.height)
            for state, n in zip(*np.unique(kps[:, 2], return_counts=True)):
                counts[float(state)] += int(n)
            sink.write(json.dumps({"frame": stem, "keypoints": keypoints_to_json(kps)}) + "\n")
            frames += 1
    print(
        f"keypoints: {frames} frames ({skipped} skipped), visible {counts[VISIBLE]}, "
        f"invisible {counts[INVISIBLE]}, unknown {counts[UNKNOWN]} -> {out}"
    )
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

    train = commands.add_parser("train", help="train the keypoint model (the runner's attempt contract)")
    train.add_argument("--config", type=Path, required=True, help="resolved attempt config (YAML)")
    train.add_argument("--workdir", type=Path, required=True, help="where checkpoints, events and logs go")
    train.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
