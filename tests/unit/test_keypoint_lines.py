"""The keypoints JSON lines that ``python -m trainer calibrate`` reads: forms, and why a line is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.evaluation.scoring import parse_keypoints_line


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[]", "JSON object"),
        ('{"frame": 12, "keypoints": []}', "frame"),
        ('{"frame": "a/b", "keypoints": []}', "frame"),
        ('{"frame": "1", "keypoints": [null]}', "57"),
        ('{"frame": "1", "keypoints": [[1]] + [null] * 56}', "JSON"),
    ],
)
def test_malformed_keypoint_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_keypoints_line(line)


def test_keypoint_line_forms() -> None:
    entries = [[1.0, 2.0], [3, 4, 0.25], None] + [None] * 54
    frame, keypoints = parse_keypoints_line(json.dumps({"frame": "00012", "keypoints": entries}))
    assert frame == "00012"
    assert keypoints[0].tolist() == [1.0, 2.0, 1.0] and keypoints[1].tolist() == [3.0, 4.0, 0.25]
    assert np.isnan(keypoints[2]).all()
    with pytest.raises(ValueError, match="keypoint 0"):
        parse_keypoints_line(json.dumps({"frame": "1", "keypoints": [[True, 2.0]] + [None] * 56}))
