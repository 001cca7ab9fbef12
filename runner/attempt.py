"""The resolved trainer config of one attempt: the job spec with a rung and the data folders.

The supervisor writes it as `WORK/attempt-N/config.yaml` (DESIGN §4); it is the trainer's only
input besides the checkpoint to resume from.
"""

from __future__ import annotations

from pathlib import Path

from runner.ladder import Rung
from runner.spec import JobSpec
from trainer.config import TrainerConfig


def attempt_config(spec: JobSpec, rung: Rung, train_dir: Path, valid_dir: Path) -> TrainerConfig:
    train = spec.train
    return TrainerConfig.model_validate({
        "model": {"arch": spec.model.arch, "pretrained": spec.model.pretrained},
        "data": {"train_dir": str(train_dir), "valid_dir": str(valid_dir), "num_workers": spec.data.num_workers},
        "rung": {"batch_size": rung.batch_size, "input_size": list(rung.input_size),
                 "accumulation": rung.accumulation, "activation_checkpointing": rung.activation_checkpointing},
        "train": {"stride": train.stride, "sigma": train.sigma, "lr": train.lr, "max_epochs": train.max_epochs,
                  "early_stopping_epochs": train.early_stopping_epochs, "reduce_lr_factor": train.reduce_lr_factor,
                  "reduce_lr_patience": train.reduce_lr_patience, "amp": train.amp, "seed": train.seed,
                  "device": train.device, "deterministic": train.deterministic},
        "checkpoint": {"every_minutes": spec.checkpoint.every_minutes, "every_epochs": spec.checkpoint.every_epochs,
                       "keep_last": spec.checkpoint.keep_last},
    })


def write_attempt_config(workdir: Path, attempt: int, config: TrainerConfig) -> Path:
    path = workdir / f"attempt-{attempt}" / "config.yaml"
    config.save(path)
    return path
