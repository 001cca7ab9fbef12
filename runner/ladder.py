"""The OOM ladder: the ordered rungs a job steps down when CUDA runs out of memory.

Pure logic (DESIGN §7), free of I/O, so the order can be tested without a GPU. Quality is given
up last: first the batch shrinks, then activation checkpointing trades compute for memory, and
only then does the input resolution drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Size = tuple[int, int]


@dataclass(frozen=True)
class Rung:
    """One configuration the trainer can be launched with."""

    batch_size: int
    input_size: Size
    activation_checkpointing: bool
    accumulation: int

    def describe(self) -> str:
        """A short label for logs and status lines."""
        w, h = self.input_size
        parts = [f"batch {self.batch_size}", f"{w}x{h}"]
        if self.accumulation > 1:
            parts.append(f"accum {self.accumulation}")
        if self.activation_checkpointing:
            parts.append("act-ckpt")
        return ", ".join(parts)


def heatmap_size(input_size: Size, stride: int) -> Size:
    """Heatmap (W, H) for an input size: rounded up, so odd sizes like 405 keep their last row."""
    w, h = input_size
    return math.ceil(w / stride), math.ceil(h / stride)


def build_ladder(
    start_batch: int,
    start_input: Size,
    batch_sizes: Sequence[int],
    input_sizes: Sequence[Size],
    activation_checkpointing: bool,
    keep_effective_batch: bool,
) -> list[Rung]:
    """All rungs from the starting configuration down, in the order they are tried.

    Only ladder entries at or below the start are used: a job that starts at batch 4 never
    climbs to 8. With `keep_effective_batch`, gradient accumulation makes every rung see the
    starting batch's worth of samples per optimizer step.
    """
    batches = [b for b in batch_sizes if b <= start_batch]
    inputs = [tuple(s) for s in input_sizes if s[0] <= start_input[0] and s[1] <= start_input[1]]
    if not batches or not inputs:
        raise ValueError("the starting batch size and input size must be on the ladder")

    def rung(batch: int, size: Size, checkpointing: bool) -> Rung:
        accumulation = start_batch // batch if keep_effective_batch else 1
        return Rung(batch, (int(size[0]), int(size[1])), checkpointing, accumulation)

    smallest = batches[-1]
    rungs = [rung(b, inputs[0], False) for b in batches]
    if activation_checkpointing:
        rungs.append(rung(smallest, inputs[0], True))
    rungs.extend(rung(smallest, size, activation_checkpointing) for size in inputs[1:])
    return rungs


def next_rung(ladder: Sequence[Rung], current: Rung) -> Rung | None:
    """The rung to try after an OOM on `current`; None at the bottom (the job fails)."""
    index = list(ladder).index(current)
    return ladder[index + 1] if index + 1 < len(ladder) else None
