"""Which remote checkpoint to restore, and which to delete (DESIGN §5, §6). Pure logic.

Restore order is by (fencing token, step), `Manifest.order`: a session that lost its lease may
still upload a late checkpoint with a higher step, and it must never win over the new owner's.
"""

from __future__ import annotations

from collections.abc import Iterable

from contract.manifest import Manifest


def restore_candidates(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Newest first by (token, step); the caller verifies each and falls back to the next."""
    return sorted(manifests, key=lambda m: m.order, reverse=True)


def to_delete(manifests: Iterable[Manifest], keep_last: int, keep_steps: Iterable[int] = ()) -> list[Manifest]:
    """Checkpoints outside the newest `keep_last` and not named in `keep_steps` (the best ones)."""
    ordered = restore_candidates(manifests)
    protected = set(keep_steps)
    return [m for m in ordered[keep_last:] if m.step not in protected]
