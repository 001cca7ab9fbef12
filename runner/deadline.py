"""The session deadline (DESIGN §3, §7): when to stop, save and hand over before a cutoff."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path


def deadline(start: datetime, max_hours: float | None, margin_minutes: float) -> datetime | None:
    """Session start + max_hours − margin; None when the session has no limit."""
    if max_hours is None:
        return None
    return start + timedelta(hours=max_hours) - timedelta(minutes=margin_minutes)


COLAB_VARIABLES = ("COLAB_RELEASE_TAG", "COLAB_GPU", "COLAB_BACKEND_VERSION")


def on_colab() -> bool:
    """Colab's runtime sets these variables in every process it starts."""
    return any(name in os.environ for name in COLAB_VARIABLES)


def boot_time(stat: Path = Path("/proc/stat")) -> datetime:
    """The machine's boot time: on Colab, the session's true start, however late we started."""
    for line in stat.read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), tz=timezone.utc)
    raise RuntimeError(f"no btime line in {stat}")


def session_start(setting: str | datetime, supervisor_start: datetime) -> datetime:
    """`auto`: the boot time on Colab, the supervisor's own start elsewhere; or a fixed time."""
    if isinstance(setting, datetime):
        return setting if setting.tzinfo else setting.replace(tzinfo=timezone.utc)
    return boot_time() if on_colab() else supervisor_start
