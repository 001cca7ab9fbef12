"""Synthetic frames on disk: generation is deterministic and resumable, and the `python -m trainer`
synth and keypoints commands write and read the real format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trainer.data.synthetic.generate import frame_paths, generate

W, H = 960, 540
REPO = Path(__file__).resolve().parents[2]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_generate_is_deterministic_and_resumable(tmp_path: Path) -> None:
    full = tmp_path / "full"
    images = generate(full, frames=4, seed=8, width=W, height=H)
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(4)]
    reference = _contents(full)
    assert sorted(reference) == sorted(
        f"{i:05d}{suffix}" for i in range(4) for suffix in (".jpg", ".json", ".camera.json")
    )

    again = tmp_path / "again"
    generate(again, frames=4, seed=8, width=W, height=H)
    assert _contents(again) == reference

    # Frames 2..3 alone come out the same as in the full run.
    part = tmp_path / "part"
    generate(part, frames=2, seed=8, width=W, height=H, start_index=2)
    assert _contents(part) == {k: v for k, v in reference.items() if k[:5] in ("00002", "00003")}

    # An incomplete frame is redone; complete ones are left alone.
    frame_paths(full, 1)[1].unlink()
    stamp = os.stat(frame_paths(full, 0)[0]).st_mtime_ns
    generate(full, frames=4, seed=8, width=W, height=H)
    assert _contents(full) == reference
    assert os.stat(frame_paths(full, 0)[0]).st_mtime_ns == stamp

    other = tmp_path / "other"
    generate(other, frames=1, seed=9, width=W, height=H)
    assert (other / "00000.json").read_bytes() != reference["00000.json"]


def test_cli_synth_then_keypoints(tmp_path: Path) -> None:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    data = tmp_path / "synth"
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "synth", str(data), "--frames", "3", "--seed", "4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "3 frames written" in run.stdout
    (data / "00007.json").write_text("{not json")

    out = tmp_path / "kp.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "trainer", "keypoints", str(data), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "00007.json" in run.stderr and "warning" in run.stderr.lower()
    assert "3 frames (1 skipped" in run.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in rows] == ["00000", "00001", "00002"]
    for row in rows:
        assert len(row["keypoints"]) == 57
        visible = [p for p in row["keypoints"] if p is not None]
        assert len(visible) >= 4
        assert all(-3.0 <= x <= W + 2.0 and -3.0 <= y <= H + 2.0 for x, y in visible)
