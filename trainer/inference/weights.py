"""The trained model as a file: its weights and what it takes to use them.

``W/weights/{final,best-evalai,best-val-loss}.pt`` hold ``{"format": 1, "meta": {...},
"state_dict": {...}}``. The metadata says which network the tensors belong to and how it was fed
(``arch``, ``num_keypoints``, ``input_size`` [W, H], ``stride``, validation's ``batch_size``) and
where in training they come from (``step``, ``epochs`` completed, that epoch's validation
``metrics``), so ``predict`` needs nothing from the user but the file. Only tensors, strings,
numbers, lists and dicts: the file loads with ``torch.load(weights_only=True)`` and is data,
never code. Beside each file its manifest ``NAME.json`` (contract's WeightsManifest: size,
sha256, step, epoch, the metric that made it the best), which the supervisor uploads after it
and ``runner pull`` verifies against.

Files written before the metadata existed are plain state dicts; they load only when the caller
supplies the metadata (``predict --arch --input-size``), and the error says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor

from contract.config import Arch, AttemptConfig, InputSize
from contract.files import atomic_write, sha256_of
from contract.manifest import WeightsManifest
from trainer.data.keypoints.table import NUM_KEYPOINTS
from trainer.model.heads import KeypointNet

WEIGHTS_FORMAT = 1
_COMPILED_PREFIX = "_orig_mod."
"""What torch.compile's wrapper puts before every name; the file holds the plain network's."""


class WeightsError(RuntimeError):
    """Weights that cannot be used; the message names the file and says why, in one line."""


class WeightsMeta(BaseModel):
    """What a weights file says about its network. Unknown keys are ignored: a newer trainer may add some."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    arch: Arch
    num_keypoints: int = Field(NUM_KEYPOINTS, ge=1)
    input_size: InputSize
    stride: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    """Validation's batch size: predict's default, so that its batches are validation's (CPU kernels
    can pick other sums for another batch shape; a flat heatmap's sub-pixel peak follows them)."""
    step: int = Field(0, ge=0)
    epochs: int = Field(0, ge=0)
    metrics: dict[str, float] = {}

    @classmethod
    def of(cls, config: AttemptConfig, step: int, epochs: int, metrics: Mapping[str, float]) -> WeightsMeta:
        """The metadata of weights trained under ``config`` (on its rung's input size)."""
        return cls(arch=config.model.arch, num_keypoints=config.model.num_keypoints,
                   input_size=config.rung.input_size, stride=config.train.stride,
                   batch_size=config.rung.batch_size, step=step, epochs=epochs,
                   metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)})


@dataclass(frozen=True)
class Weights:
    state_dict: dict[str, Tensor]
    meta: WeightsMeta


def write_weights(path: Path, state_dict: Mapping[str, Tensor], meta: WeightsMeta, metric: str | None = None) -> None:
    """The network's weights with their metadata, then their manifest beside them (``NAME.json``).

    ``metric`` is the one that made these the best weights (None for the final ones). The old
    manifest goes first and the new one comes after the file, each written atomically: the
    supervisor uploads a weights file only with a manifest of its size, and a rewrite of the same
    network has the same size, so a stale manifest must never sit beside new bytes.
    """
    snapshot = {key.removeprefix(_COMPILED_PREFIX): value.detach().to("cpu", copy=True)
                for key, value in state_dict.items()}
    document = {"format": WEIGHTS_FORMAT, "meta": meta.model_dump(mode="json"), "state_dict": snapshot}
    manifest_path = path.with_suffix(".json")
    manifest_path.unlink(missing_ok=True)
    atomic_write(path, lambda out: torch.save(document, out))
    manifest = WeightsManifest(size=path.stat().st_size, sha256=sha256_of(path), step=meta.step, epoch=meta.epochs,
                               metric=metric, value=meta.metrics.get(metric) if metric else None,
                               written_at=time.time())
    atomic_write(manifest_path, manifest.to_json())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_weights(path: Path, legacy: WeightsMeta | None = None) -> Weights:
    """The weights and metadata of ``path``; ``legacy`` is the metadata of a plain state dict.

    Raises WeightsError for a missing, truncated, unsafe or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        document: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError... for a bad file
        raise WeightsError(f"{path}: cannot be read as weights (truncated, corrupt or not a torch file): "
                           f"{_first_line(error)}") from None
    if not isinstance(document, dict):
        raise WeightsError(f"{path}: holds a {type(document).__name__}, not weights")
    if "meta" not in document:
        if not document or not all(isinstance(v, Tensor) for v in document.values()):
            raise WeightsError(f"{path}: not a weights file (no 'meta' and 'state_dict')")
        if legacy is None:
            raise WeightsError(f"{path}: a plain state dict without the metadata (arch, input size) the trainer "
                               f"stores with its weights; give --arch and --input-size")
        return Weights(dict(document), legacy)
    if document.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: weights format {document.get('format')!r}; this trainer reads {WEIGHTS_FORMAT}")
    try:
        meta = WeightsMeta.model_validate(document["meta"])
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise WeightsError(f"{path}: metadata is invalid: {problems}") from None
    state = document.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: 'state_dict' is not a dict of tensors")
    return Weights(state, meta)


def load_network(path: Path, legacy: WeightsMeta | None = None) -> tuple[KeypointNet, WeightsMeta]:
    """The network of a weights file, in eval mode on the CPU, and its metadata.

    Every tensor must fit: weights of another architecture (or another keypoint count) are
    refused with the counts of what does not fit, not half loaded.
    """
    weights = read_weights(path, legacy)
    meta = weights.meta
    if meta.num_keypoints != NUM_KEYPOINTS:
        raise WeightsError(f"{path}: a model of {meta.num_keypoints} keypoints; this trainer predicts {NUM_KEYPOINTS}")
    net = KeypointNet(meta.arch)
    own = net.state_dict()
    missing = [k for k in own if k not in weights.state_dict]
    unexpected = [k for k in weights.state_dict if k not in own]
    mismatched = [k for k in own if k in weights.state_dict and weights.state_dict[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        example = (mismatched or missing or unexpected)[0]
        raise WeightsError(f"{path}: does not fit {meta.arch} ({len(missing)} tensors missing, {len(unexpected)} "
                           f"unexpected, {len(mismatched)} of another shape, e.g. {example}): weights of another "
                           f"architecture?")
    net.load_state_dict(weights.state_dict)
    return net.eval(), meta
