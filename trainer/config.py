"""The resolved trainer config of one attempt (DESIGN §4): the job spec with the rung applied.

The supervisor writes it as `WORK/attempt-N/config.yaml`; the trainer reads nothing else. It
carries no torch import, so the supervisor can build and validate it without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    arch: Literal["hrnet_w48", "hrnet_w32", "hrnet_w18", "hrnet_w18_small"] = "hrnet_w48"
    pretrained: str | None = None


class DataConfig(_Section):
    train_dir: str
    valid_dir: str
    num_workers: int = Field(2, ge=0)


class RungConfig(_Section):
    """The OOM ladder rung this attempt runs on (runner/ladder.py chose it)."""

    batch_size: int = Field(ge=1)
    input_size: tuple[int, int]
    accumulation: int = Field(1, ge=1)
    activation_checkpointing: bool = False


class OptimConfig(_Section):
    stride: Literal[2] = 2  # the head's output stride; the heatmap size follows the model output
    sigma: float = 3.0
    lr: float = 1e-4
    max_epochs: int = Field(200, ge=1)
    early_stopping_epochs: int = Field(32, ge=1)
    reduce_lr_factor: float = 0.5
    reduce_lr_patience: int = 8
    amp: bool = True
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = False
    compile: bool = False


class CheckpointConfig(_Section):
    every_minutes: float = Field(10.0, gt=0)
    every_epochs: int = Field(1, ge=1)
    keep_last: int = Field(3, ge=1)


class LoggingConfig(_Section):
    progress_every_seconds: float = Field(10.0, ge=0)


class TrainerConfig(_Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig
    rung: RungConfig
    train: OptimConfig = OptimConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> TrainerConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()))
