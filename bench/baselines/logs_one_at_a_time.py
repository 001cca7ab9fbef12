"""`runner logs JOB --store URL` as it read a job before issue 14: the reference `bench/logs.py`
times ours against.

Not product code: nothing in `runner` imports it. It is the old command's reading, kept as it was
(each session's parts listed in name order, then one `get_bytes` per part, one at a time), run
as its own process like the CLI, so both pay the start-up of a fresh interpreter:

    python bench/baselines/logs_one_at_a_time.py JOB gs://BUCKET/PREFIX
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contract.files import TRAINER_LOG  # noqa: E402
from runner import layout  # noqa: E402
from runner.store import JobStore, Store  # noqa: E402


def old_log_parts(job: JobStore, name: str) -> list[str]:
    """The keys of the log's parts, session by session, each session's in upload order."""
    keys = []
    for session in job.list_dirs(layout.LOGS):
        folder = f"{layout.LOGS}/{session}"
        if not layout.SESSION_ID.fullmatch(session):
            continue
        for part in sorted((p for p in job.list(folder) if p.startswith(f"{name}.")), key=lambda p: (len(p), p)):
            try:
                keys.append(layout.log_key(session, part))
            except layout.UnsafeName:
                continue
    return keys


def main() -> None:
    job_name, url = sys.argv[1:3]
    job = Store.quick(url).job(job_name)
    if not job.exists(layout.SPEC):
        sys.exit(f"no job {job_name!r} in {url}")
    for key in old_log_parts(job, TRAINER_LOG):
        sys.stdout.write((job.get_bytes(key) or b"").decode(errors="replace"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
