"""Which remote checkpoint to restore, and which to delete (DESIGN §5, §6). Pure logic.

Restore order is by (fencing token, step): a session that lost its lease may still upload a
late checkpoint with a higher step, and it must never win over the new owner's checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteManifest:
    step: int
    epoch: int
    position: int
    size: int
    sha256: str
    token: int
    written_at: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def order(self) -> tuple[int, int]:
        return self.token, self.step


def restore_candidates(manifests: Iterable[RemoteManifest]) -> list[RemoteManifest]:
    """Newest first by (token, step); the caller verifies each and falls back to the next."""
    return sorted(manifests, key=lambda m: m.order, reverse=True)


def to_delete(manifests: Iterable[RemoteManifest], keep_last: int, keep_steps: Iterable[int] = ()) -> list[RemoteManifest]:
    """Checkpoints outside the newest `keep_last` and not named in `keep_steps` (the best ones)."""
    ordered = restore_candidates(manifests)
    protected = set(keep_steps)
    return [m for m in ordered[keep_last:] if m.step not in protected]
