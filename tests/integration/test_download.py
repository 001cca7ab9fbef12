"""The SoccerNet download: skip what is complete, unzip what is present, refetch corrupt zips,
and fail offline with a message that says what to do.

The offline test runs the real SoccerNet downloader in a subprocess whose proxy is a closed port
on 127.0.0.1, so it fails fast and the same way on machines with and without internet. The
other tests replace only the network fetch (there is no network here), with zips built from
synthetic frames and small expected counts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from trainer.data.download import TASK, DownloadError, count_frames, ensure_soccernet, zip_problem
from trainer.data.synthetic.generate import generate

COUNTS = {"train": 3, "valid": 2}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic SoccerNet-format frames per split, plus the non-frame files a real split has."""
    base = tmp_path_factory.mktemp("frames")
    out = {}
    for offset, (split, n) in enumerate(COUNTS.items()):
        folder = base / split
        generate(folder, frames=n, seed=offset)
        (folder / "match_info.json").write_text(json.dumps({"00000": {"match": "synthetic"}}))
        out[split] = folder
    return out


def _zip(source: Path, zip_path: Path, top: str) -> Path:
    """A zip of ``source``'s files, under the folder ``top`` inside ('' for none)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(source.iterdir()):
            archive.write(path, f"{top}/{path.name}" if top else path.name)
    return zip_path


class Network:
    """Stands in for the Hugging Face Hub: serves prepared zips and records what was asked."""

    def __init__(self, zips: dict[str, Path]) -> None:
        self.zips = zips
        self.calls: list[list[str]] = []

    def __call__(self, root: Path, splits: list[str]) -> None:
        self.calls.append(list(splits))
        (root / TASK).mkdir(parents=True, exist_ok=True)
        for split in splits:
            shutil.copyfile(self.zips[split], root / TASK / f"{split}.zip")


def _complete(root: Path, frames: dict[str, Path]) -> None:
    for split, folder in frames.items():
        shutil.copytree(folder, root / TASK / split)


def test_complete_folders_skip_the_downloader(tmp_path: Path, frames: dict[str, Path]) -> None:
    _complete(tmp_path, frames)
    network = Network({})
    dirs = ensure_soccernet(tmp_path, list(COUNTS), expected_frames=COUNTS, fetch=network)
    assert network.calls == []
    assert dirs == {split: tmp_path / TASK / split for split in COUNTS}
    assert not list((tmp_path / TASK).glob("*.zip"))


@pytest.mark.parametrize("top", ["", "{split}"], ids=["flat", "split-folder"])
def test_present_zip_is_unzipped_without_downloading(tmp_path: Path, frames: dict[str, Path], top: str) -> None:
    for split, folder in frames.items():
        _zip(folder, tmp_path / TASK / f"{split}.zip", top.format(split=split))
    network = Network({})
    dirs = ensure_soccernet(tmp_path, list(COUNTS), expected_frames=COUNTS, fetch=network)
    assert network.calls == []
    for split, folder in frames.items():
        assert count_frames(dirs[split]) == COUNTS[split]
        for path in folder.iterdir():
            assert (dirs[split] / path.name).read_bytes() == path.read_bytes()
    assert not list((tmp_path / TASK).glob(".*extracting"))


def test_incomplete_folder_is_unzipped_again(tmp_path: Path, frames: dict[str, Path]) -> None:
    _zip(frames["train"], tmp_path / TASK / "train.zip", "")
    partial = tmp_path / TASK / "train"
    partial.mkdir()
    shutil.copy(frames["train"] / "00000.jpg", partial)
    ensure_soccernet(tmp_path, ["train"], expected_frames=COUNTS, fetch=Network({}))
    assert count_frames(partial) == COUNTS["train"]


def test_a_keypoint_cache_already_in_the_split_folder_survives_unzipping(tmp_path: Path, frames: dict[str, Path]) -> None:
    """What a restore from the store's data cache puts there before the zip is unpacked."""
    _zip(frames["train"], tmp_path / TASK / "train.zip", "train")
    cache = tmp_path / TASK / "train" / ".keypoints-cache.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"restored")
    ensure_soccernet(tmp_path, ["train"], expected_frames=COUNTS, fetch=Network({}))
    assert count_frames(cache.parent) == COUNTS["train"] and cache.read_bytes() == b"restored"


def test_missing_zip_is_downloaded_and_unzipped(tmp_path: Path, frames: dict[str, Path]) -> None:
    network = Network({split: _zip(folder, tmp_path / "served" / f"{split}.zip", split) for split, folder in frames.items()})
    (tmp_path / "data" / TASK).mkdir(parents=True)
    shutil.copytree(frames["valid"], tmp_path / "data" / TASK / "valid")
    dirs = ensure_soccernet(tmp_path / "data", list(COUNTS), expected_frames=COUNTS, fetch=network)
    assert network.calls == [["train"]]
    assert count_frames(dirs["train"]) == COUNTS["train"]


def _truncated(good: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return target


def _bad_crc(good: Path, target: Path) -> Path:
    """Same size and a readable directory, but one member's bytes changed."""
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("damage", [_truncated, _bad_crc], ids=["truncated", "bad-crc"])
def test_corrupt_zip_is_detected_deleted_and_fetched_again(
    tmp_path: Path, frames: dict[str, Path], damage
) -> None:
    good = _zip(frames["train"], tmp_path / "served" / "train.zip", "train")
    assert zip_problem(good) is None
    corrupt = damage(good, tmp_path / "data" / TASK / "train.zip")
    assert zip_problem(corrupt) is not None
    network = Network({"train": good})
    dirs = ensure_soccernet(tmp_path / "data", ["train"], expected_frames=COUNTS, fetch=network)
    assert network.calls == [["train"]]
    assert count_frames(dirs["train"]) == COUNTS["train"]


def test_corrupt_download_is_retried_once_then_fails(tmp_path: Path, frames: dict[str, Path]) -> None:
    good = _zip(frames["train"], tmp_path / "served" / "good.zip", "")
    network = Network({"train": _truncated(good, tmp_path / "served" / "train.zip")})
    with pytest.raises(DownloadError, match="still unusable after downloading it again"):
        ensure_soccernet(tmp_path / "data", ["train"], expected_frames=COUNTS, fetch=network)
    assert network.calls == [["train"], ["train"]]


def test_wrong_frame_count_fails(tmp_path: Path, frames: dict[str, Path]) -> None:
    _zip(frames["train"], tmp_path / TASK / "train.zip", "")
    with pytest.raises(DownloadError, match="unpacked to 3 frames .* expected 4"):
        ensure_soccernet(tmp_path, ["train"], expected_frames={"train": 4}, fetch=Network({}))


def test_wrong_frame_size_fails(tmp_path: Path, frames: dict[str, Path]) -> None:
    _zip(frames["valid"], tmp_path / TASK / "valid.zip", "")
    with pytest.raises(DownloadError, match="are not 640x360"):
        ensure_soccernet(tmp_path, ["valid"], expected_frames=COUNTS, expected_size=(640, 360), fetch=Network({}))


def test_real_counts_are_the_default() -> None:
    from trainer.data.download import EXPECTED_FRAMES

    assert EXPECTED_FRAMES == {"train": 16_463, "valid": 3_212, "test": 3_141}


_OFFLINE_SCRIPT = """
import json, sys
from pathlib import Path
from trainer.data.download import DownloadError, ensure_soccernet
root = Path(sys.argv[1])
try:
    ensure_soccernet(root, ["valid"])
except DownloadError as error:
    print(json.dumps(str(error)))
else:
    print(json.dumps(None))
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_offline(root: Path, tmp_path: Path) -> str | None:
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("HF_")}
    env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, ALL_PROXY=proxy, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(root)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("state", ["empty-root", "partial-split-folder"])
def test_offline_download_fails_with_a_clear_message(tmp_path: Path, state: str) -> None:
    """The real SoccerNet downloader, unable to reach the hub.

    With an empty root it raises; with files already in root/calibration-2023 it only logs and
    returns, so the zip's absence is what must be caught.
    """
    root = tmp_path / "data"
    if state == "partial-split-folder":
        (root / TASK / "valid").mkdir(parents=True)
        (root / TASK / "valid" / "00000.json").write_text("{}")
    message = _run_offline(root, tmp_path)
    assert message is not None, "ensure_soccernet returned although nothing could be downloaded"
    assert "offline" in message and "unreachable" in message
    assert "data.source: path" in message and "data.root" in message
    assert not (root / TASK / "valid.zip").exists()


def test_other_download_failures_are_not_called_offline(tmp_path: Path) -> None:
    def gated(root: Path, splits: list[str]) -> None:
        raise PermissionError("Could not download from 'SoccerNet/SN-Calibration-2023': 403")

    with pytest.raises(DownloadError) as caught:
        ensure_soccernet(tmp_path, ["valid"], expected_frames=COUNTS, fetch=gated)
    message = str(caught.value)
    assert "offline" not in message and "403" in message and "data.source: path" in message
    assert isinstance(caught.value.__cause__, PermissionError)
