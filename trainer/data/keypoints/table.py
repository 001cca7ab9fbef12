"""The 57 pitch keypoints as ``keypoints57.tsv`` beside this file lists them, and their states.

The table, not code, is the single source of the points: name, kind, fixed 3D position, and the
partner of each under a horizontal image flip and under the point reflection. Everything here is
read from it once at import; keypoint arrays are float32 (57, 3): x, y in pixels and a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_KEYPOINTS = 57

VISIBLE = 1.0
INVISIBLE = 0.0
UNKNOWN = -1.0
VISIBILITY_MARGIN_PX = 3.0
"""How far outside the image (px) a point still counts as visible: about one heatmap sigma."""

_TABLE_PATH = Path(__file__).with_name("keypoints57.tsv")


@dataclass(frozen=True)
class Keypoint:
    """One row of keypoints57.tsv: a fixed pitch point and how it is found in an image."""

    index: int
    name: str
    kind: str
    xyz: tuple[float, float, float]
    flip: int
    mirror: int
    derived_from: str


def _load_table(path: Path) -> tuple[Keypoint, ...]:
    """Read the shipped table; the table, not code, is the single source of the 57 points."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("index\t"):
            continue
        cells = line.split("\t")
        rows.append(
            Keypoint(
                index=int(cells[0]),
                name=cells[1],
                kind=cells[2],
                xyz=(float(cells[3]), float(cells[4]), float(cells[5])),
                flip=int(cells[6]),
                mirror=int(cells[7]),
                derived_from=cells[8].strip(),
            )
        )
    if [kp.index for kp in rows] != list(range(NUM_KEYPOINTS)):
        raise ValueError(f"{path} must list keypoints 0..{NUM_KEYPOINTS - 1} in order")
    return tuple(rows)


KEYPOINTS: tuple[Keypoint, ...] = _load_table(_TABLE_PATH)
FLIP_INDEX: np.ndarray = np.array([kp.flip for kp in KEYPOINTS], dtype=np.int64)
MIRROR_INDEX: np.ndarray = np.array([kp.mirror for kp in KEYPOINTS], dtype=np.int64)
XYZ: np.ndarray = np.array([kp.xyz for kp in KEYPOINTS], dtype=np.float64)
"""The 57 positions in SoccerNet pitch coordinates (metres; z < 0 is above the ground)."""
INDEX_BY_NAME: dict[str, int] = {kp.name: kp.index for kp in KEYPOINTS}
ON_GROUND: np.ndarray = np.abs(XYZ[:, 2]) < 1e-9
"""The points a ground-plane homography can place (not the crossbars)."""


def _symmetric_pairs() -> np.ndarray:
    """Pairs that share pitch x (and height) at opposite y: lines across the pitch's width.

    They are what a camera looking along the long axis sees as horizontal.
    """
    pairs = []
    for i in range(NUM_KEYPOINTS):
        for j in range(i + 1, NUM_KEYPOINTS):
            xi, yi, zi = XYZ[i]
            xj, yj, zj = XYZ[j]
            if abs(xi - xj) < 1e-6 and abs(zi - zj) < 1e-6 and abs(yi + yj) < 1e-6 and abs(yi) > 1e-6:
                pairs.append((i, j))
    return np.array(pairs, dtype=np.int64)


SYMMETRIC_PAIRS: np.ndarray = _symmetric_pairs()


def flip_keypoints(kps: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored image: x → (width − 1) − x, index i → FLIP_INDEX[i]."""
    flipped = kps[FLIP_INDEX].copy()
    flipped[:, 0] = (width - 1) - flipped[:, 0]
    return flipped


def keypoints_to_json(kps: np.ndarray) -> list[list[float] | None]:
    """[x, y] per visible keypoint, None for invisible and unknown ones: what is in the picture."""
    return [
        [round(float(x), 3), round(float(y), 3)] if state == VISIBLE else None for x, y, state in kps
    ]
