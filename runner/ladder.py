"""The OOM ladder: the ordered rungs a job steps down when CUDA runs out of memory.

Pure logic (DESIGN §7), free of I/O, so the order can be tested without a GPU. Quality is given
up last: first the batch shrinks, then activation checkpointing trades compute for memory, and
only then does the input resolution drop. A rung is `contract.config.Rung`, the same model the
attempt config, the status and the CLI use.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.config import Rung

Size = tuple[int, int]


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

    def rung(batch: int, size: Sequence[int], checkpointing: bool) -> Rung:
        accumulation = start_batch // batch if keep_effective_batch else 1
        return Rung(batch_size=batch, input_size=(int(size[0]), int(size[1])),
                    accumulation=accumulation, activation_checkpointing=checkpointing)

    smallest = batches[-1]
    rungs = [rung(b, inputs[0], False) for b in batches]
    if activation_checkpointing:
        rungs.append(rung(smallest, inputs[0], True))
    rungs.extend(rung(smallest, size, activation_checkpointing) for size in inputs[1:])
    return rungs
