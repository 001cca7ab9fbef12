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
_UNDISTORT_STEPS = 6
_BORDER_SAMPLES = 64
"""Samples per image edge when finding how far the undistorted picture reaches beyond the frame."""


@dataclass(frozen=True)
class View:
    """A camera as matrices plus SoccerNet's first radial distortion term: what drawing and clicking need.

    ``k1`` bends the image as SoccerNet's ``Camera.distort`` does (normalised point × (1 + k1·r²)),
    so a frame drawn and clicked through it matches what its ``camera.json`` projects; the other
    distortion terms are not modelled, and synthetic cameras leave them 0.
    """

    rotation: np.ndarray
    position: np.ndarray
    calibration: np.ndarray
    width: int
    height: int
    k1: float = 0.0

    @classmethod
    def from_json(cls, camera_json: dict, width: int, height: int) -> "View":
        camera = Camera(width, height)
        camera.from_json_parameters(camera_json)
        k1 = float(camera.radial_distortion[0])
        return cls(camera.rotation, camera.position, camera.calibration, width, height, k1)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T

    def pixels(self, camera_points: np.ndarray) -> np.ndarray:
        if self.k1 == 0.0:
            h = camera_points @ self.calibration.T
            return h[:, :2] / h[:, 2:3]
        return self.normalised_to_pixels(camera_points[:, :2] / camera_points[:, 2:3])

    def normalised_to_pixels(self, normalised: np.ndarray) -> np.ndarray:
        """Pixels of points on the normalised image plane (z = 1), through the lens distortion."""
        factor = 1.0 + self.k1 * np.einsum("ij,ij->i", normalised, normalised)[:, None]
        return normalised * factor * np.diag(self.calibration)[:2] + self.calibration[:2, 2]

    def pixels_to_normalised(self, pixels: np.ndarray) -> np.ndarray:
        """The inverse of normalised_to_pixels: where on the normalised plane each pixel looks."""
        distorted = (np.asarray(pixels, dtype=np.float64) - self.calibration[:2, 2]) / np.diag(self.calibration)[:2]
        return distorted * self.undistortion_scale(np.hypot(distorted[:, 0], distorted[:, 1]))[:, None]

    def undistortion_scale(self, r_d: np.ndarray) -> np.ndarray:
        """r_u / r_d, where r_u·(1 + k1·r_u²) = r_d: solved by Newton's method, elementwise.

        A broadcast lens keeps k1·r² small, so a few steps from r_u = r_d converge to far below a
        pixel's width.
        """
        r_u = r_d.copy()
        for _ in range(_UNDISTORT_STEPS):
            square = r_u * r_u
            r_u -= (r_u * (1.0 + self.k1 * square) - r_d) / (1.0 + 3.0 * self.k1 * square)
        return np.divide(r_u, r_d, out=np.ones_like(r_d), where=r_d > 0.0)

    def undistorted_canvas(self) -> "View":
        """A pinhole view whose image holds every point this (distorted) view sees.

        The renderer draws straight projections on it and then warps them into this view; with
        no distortion it is this view itself. The canvas shares the rotation, position and focal
        length and only moves the principal point, so a canvas pixel is an undistorted pixel
        shifted by a constant.
        """
        if self.k1 == 0.0:
            return self
        w1, h1 = self.width - 1.0, self.height - 1.0
        t = np.linspace(0.0, 1.0, _BORDER_SAMPLES)
        border = np.concatenate(
            [np.c_[t * w1, 0 * t], np.c_[t * w1, 0 * t + h1], np.c_[0 * t, t * h1], np.c_[0 * t + w1, t * h1]]
        )
        reach = self.normalised_to_pixels_pinhole(self.pixels_to_normalised(border))
        low = np.floor(np.minimum(reach.min(axis=0), 0.0)) - 2.0
        high = np.ceil(np.maximum(reach.max(axis=0), [w1, h1])) + 2.0
        calibration = self.calibration.copy()
        calibration[:2, 2] -= low
        width, height = (int(v) + 1 for v in high - low)
        return View(self.rotation, self.position, calibration, width, height)

    def normalised_to_pixels_pinhole(self, normalised: np.ndarray) -> np.ndarray:
        """Pixels of normalised points without the lens: where a pinhole camera would see them."""
        return normalised * np.diag(self.calibration)[:2] + self.calibration[:2, 2]

    def ground_homography(self) -> np.ndarray:
        """Pitch plane (x, y, 1) → image of the pinhole part (no distortion); SoccerNet's z = 0 plane."""
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
