"""Broadcast cameras for synthetic frames: random ones to render from, and their matrices.

Cameras are SoccerNet's JSON form (``Camera.to_json_parameters``), the form the frames' true
``NNNNN.camera.json`` is written in; ``View`` holds the matrices drawing and clicking need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from SoccerNet.Evaluation.utils_calibration import Camera

NEAR_M = 0.5
"""Pitch geometry closer to the camera plane than this is clipped away before projection."""


@dataclass(frozen=True)
class View:
    """A pinhole camera as matrices: what the renderer needs from SoccerNet's Camera."""

    rotation: np.ndarray
    position: np.ndarray
    calibration: np.ndarray
    width: int
    height: int

    @classmethod
    def from_json(cls, camera_json: dict, width: int, height: int) -> "View":
        camera = Camera(width, height)
        camera.from_json_parameters(camera_json)
        return cls(camera.rotation, camera.position, camera.calibration, width, height)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T

    def pixels(self, camera_points: np.ndarray) -> np.ndarray:
        h = camera_points @ self.calibration.T
        return h[:, :2] / h[:, 2:3]

    def ground_homography(self) -> np.ndarray:
        """Pitch plane (x, y, 1) → image; SoccerNet's z = 0 plane."""
        k, r = self.calibration, self.rotation
        return k @ np.column_stack((r[:, 0], r[:, 1], -r @ self.position))


def camera_looking_at(
    position: np.ndarray, target: np.ndarray, fov_deg: float, roll_deg: float, width: int, height: int
) -> dict:
    """SoccerNet camera JSON for a camera at `position` aimed at `target` (z < 0 is above ground).

    SoccerNet's optical axis is (sin pan·sin tilt, −cos pan·sin tilt, cos tilt), so pan and tilt
    follow from the viewing direction. The dict goes through Camera twice so that what is saved is
    exactly what from_json_parameters will rebuild.
    """
    d = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    tilt = math.acos(d[2] / np.linalg.norm(d))
    pan = math.atan2(d[0], -d[1])
    focal = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    camera = Camera(width, height)
    camera.from_json_parameters(
        {
            "pan_degrees": math.degrees(pan),
            "tilt_degrees": math.degrees(tilt),
            "roll_degrees": roll_deg,
            "position_meters": [float(v) for v in position],
            "x_focal_length": focal,
            "y_focal_length": focal,
            "principal_point": [width / 2.0, height / 2.0],
            "radial_distortion": [0.0] * 6,
            "tangential_distortion": [0.0] * 2,
            "thin_prism_distortion": [0.0] * 4,
        }
    )
    saved = camera.to_json_parameters()
    return {key: (float(v) if isinstance(v, float) else v) for key, v in saved.items()}


_SHOTS = (
    # name, weight, target x range (mirrored for the right half), target y range, fov range (deg)
    ("centre", 0.25, (-12.0, 12.0), (-18.0, 14.0), (22.0, 50.0)),
    ("half", 0.35, (15.0, 42.0), (-20.0, 18.0), (20.0, 50.0)),
    ("goal", 0.25, (40.0, 51.0), (-12.0, 14.0), (10.0, 24.0)),
    ("wide", 0.15, (-25.0, 25.0), (-10.0, 6.0), (48.0, 62.0)),
)


def sample_camera(rng: np.random.Generator, width: int, height: int) -> dict:
    """A main broadcast camera: behind the 'bottom' touch line, 12-22 m up, aimed into the pitch.

    Shots mix the centre, either half, goal-area zooms and wide views, so every kind of keypoint
    appears and both halves are equally common (SoccerNet labels as seen from this side).
    """
    weights = np.array([shot[1] for shot in _SHOTS])
    _, _, xs, ys, fovs = _SHOTS[rng.choice(len(_SHOTS), p=weights / weights.sum())]
    side = 1.0 if rng.random() < 0.5 else -1.0
    position = np.array([rng.uniform(-12.0, 12.0), rng.uniform(55.0, 70.0), -rng.uniform(12.0, 22.0)])
    target_x = rng.uniform(*xs) * (side if xs[0] >= 0 else 1.0)
    target = np.array([target_x, rng.uniform(*ys), 0.0])
    fov = math.exp(rng.uniform(math.log(fovs[0]), math.log(fovs[1])))
    return camera_looking_at(position, target, fov, rng.uniform(-1.5, 1.5), width, height)
