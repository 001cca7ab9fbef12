"""The SoccerNet split reader: every kind of bad frame or line is skipped, counted and logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.data.soccernet import LINE_CLASSES, SkipReason, read_split

GOOD = {
    "Middle line": [{"x": 0.5, "y": 0.1}, {"x": 0.52, "y": 0.9}],
    "Circle central": [{"x": 0.4, "y": 0.5}, {"x": 0.5, "y": 0.45}, {"x": 0.6, "y": 0.5}],
    "Goal left post left ": [{"x": 0.1, "y": 0.3}, {"x": 0.1, "y": 0.2}],
}


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((18, 32, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


def _frame(folder: Path, stem: str, annotation: object, image: bytes | None = None) -> None:
    if isinstance(annotation, str):
        annotation = annotation.encode()
    data = annotation if isinstance(annotation, bytes) else json.dumps(annotation).encode()
    (folder / f"{stem}.json").write_bytes(data)
    if image is not None:
        (folder / f"{stem}.jpg").write_bytes(image)


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    jpg = _jpeg()
    _frame(tmp_path, "00000", GOOD, jpg)
    _frame(tmp_path, "00001", GOOD, jpg)
    _frame(tmp_path, "00002", '{"Middle line": [{"x": 0.5, ', jpg)  # truncated
    _frame(tmp_path, "00003", "[1, 2, 3]", jpg)  # valid JSON, not a mapping
    _frame(tmp_path, "00004", GOOD)  # no image
    _frame(tmp_path, "00005", GOOD, b"")  # empty image file
    _frame(tmp_path, "00006", {**GOOD, "Penalty spot": [{"x": 0.3, "y": 0.3}]}, jpg)
    _frame(tmp_path, "00007", {**GOOD, "Side line top": [{"x": 0.3, "y": 1.5}]}, jpg)
    _frame(tmp_path, "00008", '{"Side line top": [{"x": NaN, "y": 0.2}], "Middle line": []}', jpg)
    _frame(tmp_path, "00009", {**GOOD, "Side line left": [{"x": "a", "y": 0.2}]}, jpg)
    _frame(tmp_path, "00010", b'{"Middle line": "\xff\xfe"}', jpg)  # not UTF-8
    (tmp_path / "00011.jpg").write_bytes(jpg)  # image without annotation
    (tmp_path / "match_info.json").write_text("{not json at all")
    (tmp_path / "per_match_info.json").write_text('{"00000": {"match": "x"}}')
    (tmp_path / "00000.camera.json").write_text('{"pan": 1.0}')
    return tmp_path


def test_good_frames_are_read_with_their_lines(split_dir: Path) -> None:
    data = read_split(split_dir)
    by_id = {f.frame_id: f for f in data.frames}
    assert sorted(by_id) == ["00000", "00001", "00006", "00007", "00008", "00009"]
    assert by_id["00000"].annotation == GOOD
    assert by_id["00000"].image_path == split_dir / "00000.jpg"
    assert by_id["00000"].annotation_sha1 == by_id["00001"].annotation_sha1


def test_every_bad_frame_is_skipped_and_counted(split_dir: Path) -> None:
    report = read_split(split_dir).skipped
    assert report.counts[SkipReason.CORRUPT_JSON] == 3
    assert report.examples[SkipReason.CORRUPT_JSON] == ["00002.json", "00003.json", "00010.json"]
    assert report.counts[SkipReason.MISSING_IMAGE] == 1
    assert report.examples[SkipReason.MISSING_IMAGE] == ["00004.json"]
    assert report.counts[SkipReason.UNREADABLE_IMAGE] == 1
    assert report.counts[SkipReason.MISSING_ANNOTATION] == 1
    assert report.examples[SkipReason.MISSING_ANNOTATION] == ["00011.jpg"]
    assert report.frames_skipped == 6


def test_bad_lines_are_dropped_and_their_frame_kept(split_dir: Path) -> None:
    data = read_split(split_dir)
    by_id = {f.frame_id: f for f in data.frames}
    assert by_id["00006"].annotation == GOOD
    assert by_id["00007"].annotation == GOOD
    assert by_id["00008"].annotation == {"Middle line": []}
    assert by_id["00009"].annotation == GOOD
    report = data.skipped
    assert report.counts[SkipReason.UNKNOWN_LINE_CLASS] == 1
    assert report.examples[SkipReason.UNKNOWN_LINE_CLASS] == ["00006.json: 'Penalty spot'"]
    assert report.counts[SkipReason.POINT_OUT_OF_RANGE] == 2
    assert report.counts[SkipReason.MALFORMED_LINE] == 1
    assert report.lines_skipped == 4


def test_points_at_the_edge_of_the_allowed_range_are_kept(tmp_path: Path) -> None:
    edge = {"Side line top": [{"x": -0.1, "y": 1.1}, {"x": 1.1, "y": 0.0}]}
    _frame(tmp_path, "00000", edge, _jpeg())
    data = read_split(tmp_path)
    assert data.frames[0].annotation == edge
    assert not data.skipped


def test_unreadable_annotation_file_is_counted(tmp_path: Path) -> None:
    _frame(tmp_path, "00000", GOOD, _jpeg())
    _frame(tmp_path, "00001", GOOD, _jpeg())
    (tmp_path / "00001.json").unlink()
    (tmp_path / "00001.json").mkdir()  # a directory named like a frame cannot be read
    data = read_split(tmp_path)
    assert [f.frame_id for f in data.frames] == ["00000"]
    assert data.skipped.counts[SkipReason.UNREADABLE_JSON] == 1


def test_skips_are_logged_once_with_examples(split_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer.data.soccernet"):
        read_split(split_dir)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "6 frame(s) and 4 line(s) skipped" in message
    assert "00002.json" in message and "Penalty spot" in message


def test_examples_are_capped_but_counts_are_not(tmp_path: Path) -> None:
    for i in range(8):
        _frame(tmp_path, f"{i:05d}", "{", _jpeg())
    report = read_split(tmp_path, max_examples=3).skipped
    assert report.counts[SkipReason.CORRUPT_JSON] == 8
    assert report.examples[SkipReason.CORRUPT_JSON] == ["00000.json", "00001.json", "00002.json"]


def test_clean_split_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _frame(tmp_path, "00000", GOOD, _jpeg())
    with caplog.at_level(logging.WARNING, logger="trainer.data.soccernet"):
        data = read_split(tmp_path)
    assert len(data) == 1 and not data.skipped
    assert not caplog.records


def test_line_classes_are_soccernets() -> None:
    assert "Goal left post left " in LINE_CLASSES
    assert "Circle central" in LINE_CLASSES
    assert "Penalty spot" not in LINE_CLASSES
