"""How soon training detects keypoints: the head's prior initialisation against PyTorch's default.

    python bench/learning.py [--steps 100]      # --steps 400 checks the goal of issue 14

Overfits hrnet_w18_small on 8 synthetic frames (``trainer synth --seed 1``) at 256×144: all frames
in every batch, no augmentation, Adam at lr 1e-3, the recipe's loss (sigma 3, stride 2), the real
``HeatmapModel.train_step``, on CPU from one torch seed. Trained twice in this process from the same
seed and data: once as built (the classifier's biases at the targets' prior, trainer/model/heads.py)
and once with those biases redrawn the way PyTorch initialises them (the init before the change).
The frames are scored as validation scores them: eval mode (BatchNorm's running statistics),
softmax, ``keypoints_from_heatmaps`` to 960×540, ``keypoint_metrics`` at confidence 0.3; scoring
does not change training. Prints the first step with a correct detection (a confident keypoint
within 5 px of a visible target at 960×540, checked every ``--every`` steps), PCK@5 and recall at
50, 100, 200 and 400 steps (those within ``--steps``, and the last), the time per step, the ratios,
and how far the issue's goal is.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from trainer.data.loader import build_dataset  # noqa: E402
from trainer.data.soccernet import NATIVE_SIZE  # noqa: E402
from trainer.data.synthetic.generate import generate  # noqa: E402
from trainer.data.transforms import scale_keypoints  # noqa: E402
from trainer.evaluation.heatmaps import keypoints_from_heatmaps  # noqa: E402
from trainer.evaluation.keypoint_metrics import keypoint_metrics  # noqa: E402
from trainer.model.metamodel import HeatmapModel  # noqa: E402

REPORT_STEPS = (50, 100, 200, 400)
GOAL_FIRST_STEP, GOAL_PCK, GOAL_PCK_STEP = 50, 0.5, 400
STRIDE = 2


@dataclass
class Curve:
    """What one initialisation reached: the first detecting step and the scores at REPORT_STEPS."""

    name: str
    first: int | None = None
    scores: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds_per_step: float = math.nan


def pytorch_default_biases(classifier: nn.Conv2d, seed: int) -> None:
    """The baseline: the classifier's biases as nn.Conv2d draws them, U(±1/sqrt(fan_in)), i.e. every
    channel, background included, near 1/58 of the softmax."""
    bound = 1.0 / math.sqrt(classifier.in_channels * classifier.kernel_size[0] * classifier.kernel_size[1])
    with torch.no_grad():
        classifier.bias.uniform_(-bound, bound, generator=torch.Generator().manual_seed(seed))


def overfit_batch(folder: Path, frames: int, size: tuple[int, int]) -> tuple[dict, np.ndarray]:
    """All frames as one batch as validation loads them, and their targets at 960×540."""
    generate(folder, frames=frames, seed=1)
    dataset = build_dataset(folder, size, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    batch = {
        "image": torch.stack([item["image"] for item in items]),
        "keypoints": torch.stack([item["keypoints"] for item in items]),
        "index": torch.arange(len(items)),
    }
    targets = np.stack([scale_keypoints(k.numpy(), size, NATIVE_SIZE) for k in batch["keypoints"]])
    return batch, targets


def score(model: HeatmapModel, batch: dict, targets: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    """Validation's keypoint scores of the batch (eval mode; BatchNorm statistics are not updated)."""
    probabilities = model.val_step(batch, None)["prediction"]
    return keypoint_metrics(keypoints_from_heatmaps(probabilities, STRIDE, size, NATIVE_SIZE), targets)


def train(name: str, prior: bool, batch: dict, targets: np.ndarray, args: argparse.Namespace) -> Curve:
    """Overfit ``batch`` for ``args.steps`` steps from ``args.seed``, the head as built (``prior``) or
    with the baseline's biases; scored every ``args.every`` steps until it first detects."""
    size = tuple(args.size)
    torch.manual_seed(args.seed)
    model = HeatmapModel({"nn_module": {"arch": args.arch}, "optimizer": {"lr": args.lr},
                          "loss": {"stride": STRIDE, "sigma": 3.0}, "device": "cpu"})
    model.setup(amp=False, accumulation=1)
    model.epoch_end = 10**12  # one endless epoch: every step is a whole optimizer step
    if not prior:
        pytorch_default_biases(model.nn_module.head.classifier, args.seed)
    curve = Curve(name)
    report = {s for s in REPORT_STEPS if s < args.steps} | {args.steps}
    training = 0.0
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        loss = model.train_step(batch, None)["loss"]
        training += time.perf_counter() - start
        searching = curve.first is None and step % args.every == 0
        if not searching and step not in report:
            continue
        scores = score(model, batch, targets, size)
        if curve.first is None and scores["pck@5"] > 0:
            curve.first = step
        if step in report:
            curve.scores[step] = scores
            print(f"  {name}: step {step}: loss {loss:.5f}, pck@5 {scores['pck@5']:.3f}, "
                  f"recall {scores['recall']:.3f} ({training / step:.1f} s/step)", flush=True)
    curve.seconds_per_step = training / args.steps
    return curve


def first_text(curve: Curve, steps: int) -> str:
    """The first detecting step, or that there was none."""
    return f"step {curve.first}" if curve.first is not None else f"none in {steps} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per initialisation")
    parser.add_argument("--every", type=int, default=1, help="until the first detection, score every N steps")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 144], metavar=("W", "H"))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--arch", default="hrnet_w18_small")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the network's initialisation")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        batch, targets = overfit_batch(Path(tmp), args.frames, tuple(args.size))
    visible = int((batch["keypoints"][..., 2] == 1).sum())
    print(f"{args.arch} overfitting {args.frames} synthetic frames at {args.size[0]}x{args.size[1]} ({visible} "
          f"visible keypoints), batch {args.frames}, lr {args.lr:g}, {args.steps} steps, CPU "
          f"{torch.get_num_threads()} threads", flush=True)
    ours = train("prior init", True, batch, targets, args)
    base = train("pytorch default (baseline)", False, batch, targets, args)

    print(f"\nfirst correct detection (pck@5 > 0, scored every {args.every} steps): "
          f"prior {first_text(ours, args.steps)}, baseline {first_text(base, args.steps)}", end="")
    if ours.first is not None:
        later = base.first if base.first is not None else args.steps
        print(f"; {'' if base.first is not None else '> '}{later / ours.first:.1f}x sooner")
    else:
        print()
    for step in sorted(ours.scores):
        a, b = ours.scores[step], base.scores[step]
        print(f"step {step:3d}: pck@5 {a['pck@5']:.3f} vs {b['pck@5']:.3f}, recall {a['recall']:.3f} vs "
              f"{b['recall']:.3f}, pck@10 {a['pck@10']:.3f} vs {b['pck@10']:.3f} (prior vs baseline)")
    print(f"time per step: {ours.seconds_per_step:.2f} s vs {base.seconds_per_step:.2f} s "
          "(the same work: a difference is the machine's load)")
    met = ours.first is not None and ours.first <= GOAL_FIRST_STEP
    print(f"goal, first detection within {GOAL_FIRST_STEP} steps: {'met' if met else 'missed'} "
          f"({first_text(ours, args.steps)})")
    if GOAL_PCK_STEP in ours.scores:
        pck = ours.scores[GOAL_PCK_STEP]["pck@5"]
        print(f"goal, pck@5 >= {GOAL_PCK} by step {GOAL_PCK_STEP}: {'met' if pck >= GOAL_PCK else 'missed'} "
              f"({pck:.3f})")
    else:
        print(f"goal, pck@5 >= {GOAL_PCK} by step {GOAL_PCK_STEP}: not checked (run with --steps {GOAL_PCK_STEP})")


if __name__ == "__main__":
    main()
