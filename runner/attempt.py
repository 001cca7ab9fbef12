"""What the supervisor hands the trainer: the attempt config and the data-preparation command.

Pure: built from the spec alone. The spec's trainer sections pass through unchanged (they are
the same `contract.config` classes); only the rung and the prepared data folders are added
(DESIGN §4). The supervisor writes the result as `WORK/attempt-N/config.yaml`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from contract.config import AttemptConfig, DataConfig, LoaderConfig, Rung, TrainConfig, narrow
from runner.spec import DataSpec, JobSpec


def attempt_config(spec: JobSpec, rung: Rung, train_dir: Path, valid_dir: Path,
                   pretrained: str | None = None) -> AttemptConfig:
    """`pretrained`: where the backbone weights are on this machine for this attempt (None when it
    resumes a checkpoint, which carries them: runner/inputs.py), in place of the spec's path."""
    loader = narrow(spec.data, LoaderConfig)
    return AttemptConfig(
        model=spec.model.model_copy(update={"pretrained": pretrained}),
        data=DataConfig(train_dir=str(train_dir), valid_dir=str(valid_dir), **loader.model_dump()),
        rung=rung,
        train=narrow(spec.train, TrainConfig),
        checkpoint=spec.checkpoint,
    )


def train_command(config: Path, workdir: Path, resume: Path | None, gpus: int) -> list[str]:
    """`python -m trainer train ...` (DESIGN §4); with more than one GPU the trainer runs itself
    under torchrun, one rank per GPU (DESIGN §9)."""
    cmd = [sys.executable, "-m", "trainer", "train", "--config", str(config), "--workdir", str(workdir)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    if gpus > 1:
        cmd += ["--nproc-per-node", str(gpus)]
    return cmd


def prepare_command(data: DataSpec, *, plan: bool = False) -> list[str]:
    """`python -m trainer prepare ...`: renders, downloads or checks the data and derives its
    keypoints; prints the split dirs. With `plan`: changes nothing, prints which files a store's
    data cache could provide (runner/data_cache.py)."""
    return [sys.executable, "-m", "trainer", "prepare", "--source", data.source, "--root", data.root,
            "--train-split", data.splits.train, "--valid-split", data.splits.valid,
            "--frames", str(data.frames), "--valid-frames", str(data.valid_frames), "--seed", str(data.seed),
            *(["--plan"] if plan else [])]
