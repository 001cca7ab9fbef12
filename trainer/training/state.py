"""What a checkpoint holds for exact resume, and how it is put back (DESIGN §8).

Model, optimizer, grad scaler, LR scheduler, early-stopping counter, best metrics, position
(epoch, sample within the epoch, optimizer step) and every RNG. Only tensors, numbers,
strings, lists, tuples and dicts: the file must load with `weights_only=True`.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from trainer.model.metamodel import HeatmapModel, Position

FORMAT = 1


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """random.setstate wants the exact nesting of tuples that getstate gave."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def capture(model: HeatmapModel, callbacks: dict[str, Any], best: dict[str, dict[str, float]],
            finished: str | None) -> dict[str, Any]:
    """The whole training state at a step boundary (no accumulated gradients pending)."""
    if model.position.pending:
        raise RuntimeError("a checkpoint must be taken at an optimizer-step boundary")
    return {
        "format": FORMAT,
        "model": model.nn_module.state_dict(),
        "optimizer": model.optimizer.state_dict(),
        "scaler": model.scaler.state_dict(),
        "callbacks": {name: cb.state_dict() for name, cb in callbacks.items()},
        "best": best,
        "position": asdict(model.position),
        "finished": finished,
        "rng": rng_state(),
    }


def restore(model: HeatmapModel, callbacks: dict[str, Any], state: dict[str, Any]) -> tuple[dict, str | None]:
    """Put a captured state back; returns (best metrics, why training had finished, if it had)."""
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')!r} is not {FORMAT}")
    model.nn_module.load_state_dict(state["model"])
    model.optimizer.load_state_dict(state["optimizer"])
    if state["scaler"] and model.scaler.is_enabled():  # a CPU run's disabled scaler saved nothing
        model.scaler.load_state_dict(state["scaler"])
    for name, callback in callbacks.items():
        callback.load_state_dict(state["callbacks"][name])
    model.position = Position(**state["position"])
    restore_rng(state["rng"])
    return state["best"], state["finished"]
