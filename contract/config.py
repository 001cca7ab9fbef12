"""The attempt config (DESIGN §4): the spec's trainer sections plus the rung, defined once.

`runner/spec.py` embeds these sections in the job spec; the supervisor copies them unchanged
into `WORK/attempt-N/config.yaml` and sets only the rung, which `runner/ladder.py` chooses. The
trainer reads nothing else. A field added here is a spec field at once, with one validator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from contract.files import atomic_write

MIN_SIDE = 64
# Upper bounds: every number a spec gives is finite and within a range a real run could use, so a
# typo (an extra zero, a pasted timestamp) is refused by `validate`, not found hours later.
MAX_SIDE = 8192
MAX_BATCH = 4096
MAX_COUNT = 1_000_000  # epochs, patience, checkpoint spacing
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_FRAMES = 1_000_000
Arch = Literal["hrnet_w48", "hrnet_w32", "hrnet_w18", "hrnet_w18_small"]


def _two_sides(value: Any) -> Any:
    """An image size is exactly [W, H]; say so instead of pydantic's tuple-index message."""
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise ValueError(f"{list(value)} must be [W, H]: two whole numbers of pixels, e.g. [720, 405]")
    return value


Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]
InputSize = Annotated[tuple[Side, Side], BeforeValidator(_two_sides)]


class Section(BaseModel):
    """Unknown keys are errors: a typo must not become a silently ignored setting. Every float is
    finite: `.inf` and `.nan` are refused wherever a number is read."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


S = TypeVar("S", bound=Section)


def narrow(section: Section, to: type[S]) -> S:
    """The fields of `to` out of a section that extends it (the spec adds runner-only fields)."""
    return to.model_validate(section.model_dump(include=set(to.model_fields)))


PRETRAINED_IMAGENET = "imagenet"
"""`model.pretrained: imagenet`: the trainer fetches the arch's ImageNet backbone weights by name
(Hugging Face Hub, cached); any other value is a local file. The runner passes it through as is."""


def _pretrained(value: Any) -> Any:
    """Empty or blank is not a file and not `imagenet`: say what is allowed."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"must be {PRETRAINED_IMAGENET!r} or the path of a local weights file, not empty")
    return value


class ModelConfig(Section):
    arch: Arch = "hrnet_w48"
    num_keypoints: Literal[57] = 57
    pretrained: Annotated[str | None, BeforeValidator(_pretrained)] = Field(
        None, description=f"ImageNet backbone weights: {PRETRAINED_IMAGENET!r} (fetched for the arch from the "
                          "Hugging Face Hub and cached) or a local file (.pt, .pth or .safetensors)")


class TrainConfig(Section):
    stride: Literal[2] = 2  # the head's output stride; the heatmap size follows the input size
    sigma: float = Field(3.0, gt=0, le=100)
    lr: float = Field(1e-4, gt=0, le=10)
    max_epochs: int = Field(200, ge=1, le=MAX_COUNT)
    early_stopping_epochs: int = Field(32, ge=1, le=MAX_COUNT)
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    reduce_lr_patience: int = Field(8, ge=0, le=MAX_COUNT)
    amp: bool = True
    seed: int = Field(42, ge=0, le=MAX_SEED)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = Field(False, description="bit-exact resume on CPU; slower on CUDA")
    compile: bool = Field(False, description="torch.compile the model (CUDA; slow first steps)")
    sync_bn: bool | None = Field(None, description="SyncBatchNorm across GPUs when resources.gpus > 1; "
                                 "unset: on when the per-GPU batch is below 8 (CUDA only)")


class LoaderConfig(Section):
    num_workers: int = Field(2, ge=0, le=64)


class CheckpointConfig(Section):
    every_minutes: float = Field(10.0, gt=0, le=1440)
    every_epochs: int = Field(1, ge=1, le=MAX_COUNT)
    keep_last: int = Field(3, ge=1, le=1000)


class Rung(Section):
    """One configuration of the OOM ladder: the only settings the supervisor changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(ge=1, le=MAX_BATCH)
    input_size: InputSize
    accumulation: int = Field(1, ge=1, le=MAX_BATCH)
    activation_checkpointing: bool = False

    def heatmap_size(self, stride: int) -> tuple[int, int]:
        """Heatmap (W, H): rounded up, so odd sizes like 405 keep their last row."""
        w, h = self.input_size
        return math.ceil(w / stride), math.ceil(h / stride)

    def describe(self) -> str:
        """A short label for logs and status lines."""
        w, h = self.input_size
        parts = [f"batch {self.batch_size}", f"{w}x{h}"]
        if self.accumulation > 1:
            parts.append(f"accum {self.accumulation}")
        if self.activation_checkpointing:
            parts.append("act-ckpt")
        return ", ".join(parts)


class DataConfig(LoaderConfig):
    """The prepared split folders of this attempt, and how to load them."""

    train_dir: str
    valid_dir: str


class LoggingConfig(Section):
    progress_every_seconds: float = Field(10.0, ge=0, le=3600)


class AttemptConfig(Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig
    rung: Rung
    train: TrainConfig = TrainConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()

    def save(self, path: Path) -> None:
        atomic_write(path, yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False).encode())

    @classmethod
    def load(cls, path: Path) -> AttemptConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()))
