"""The manifests: one model for the trainer's sidecar and the store's copy, for checkpoints and
for weights.

The trainer writes it beside each checkpoint without a token; the supervisor uploads the same
model with the fencing token it holds (DESIGN §5, §6). A checkpoint counts only once its
manifest exists, and the manifest vouches for the file's size and sha256.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, ser_json_inf_nan="constants")

    step: int = Field(ge=0)
    epoch: int = Field(ge=0)
    position: int = Field(ge=0, description="samples into the epoch")
    size: int = Field(ge=0)
    sha256: str
    written_at: float
    metrics: dict[str, float] = Field(default_factory=dict)
    token: int | None = Field(None, description="the fencing token of the session that uploaded it")

    @property
    def order(self) -> tuple[int, int]:
        """Restore order: a stale writer's higher step never wins over a newer token."""
        return self.token or 0, self.step

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode()

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Raises OSError or pydantic.ValidationError (a ValueError) for a missing or bad file."""
        return cls.model_validate_json(Path(path).read_bytes())


class WeightsManifest(BaseModel):
    """Beside each weights file (`weights/NAME.pt` → `weights/NAME.json`): what the file is, so
    `runner pull` can verify it and say what it got. Written by the trainer after the file; the
    supervisor uploads it after the object, with its token, as it does checkpoints' manifests."""

    model_config = ConfigDict(extra="ignore", frozen=True, ser_json_inf_nan="constants")

    size: int = Field(ge=0)
    sha256: str
    step: int = Field(ge=0)
    epoch: int = Field(ge=0)
    metric: str | None = Field(None, description="the metric that made these weights the best; none for final")
    value: float | None = None
    written_at: float
    token: int | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode()

    @classmethod
    def read(cls, path: Path) -> WeightsManifest:
        """Raises OSError or pydantic.ValidationError (a ValueError) for a missing or bad file."""
        return cls.model_validate_json(Path(path).read_bytes())

    def describe(self) -> str:
        best = f", best {self.metric} {self.value:.4g}" if self.metric and self.value is not None else ""
        return f"step {self.step}, epoch {self.epoch}{best}"
