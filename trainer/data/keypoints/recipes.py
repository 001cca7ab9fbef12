"""The pitch side of the derivation: each keypoint's recipe, parsed once from the table.

The table's ``derived_from`` column says which annotated lines or circle find a point; parsing it
against SoccerNet's pitch model also precomputes the pitch-side facts that tell the two roots of a
line–conic or tangent construction apart in any image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from SoccerNet.Evaluation.utils_calibration import SoccerPitch

from trainer.data.keypoints.geometry import (
    Ellipse,
    Line2,
    cross,
    line_ellipse_intersections,
    orientation,
    tangent_points,
)
from trainer.data.keypoints.table import INDEX_BY_NAME, KEYPOINTS, XYZ, Keypoint

_CONIC_REFERENCE_MIN_OFFSET_M = 3.0
"""A circle centre this far off a chord reliably tells its two crossings apart (see _line_conic_recipe)."""

PITCH = SoccerPitch()
_CLASS_BY_STRIPPED = {name.strip(): name for name in SoccerPitch.lines_classes}
_RADIUS = SoccerPitch.CENTER_CIRCLE_RADIUS
PITCH_CIRCLES = {
    name: Ellipse(np.asarray(PITCH.point_dict[centre][:2], dtype=np.float64), _RADIUS, _RADIUS, 0.0)
    for name, centre in (
        ("Circle central", "CENTER_MARK"),
        ("Circle left", "L_PENALTY_MARK"),
        ("Circle right", "R_PENALTY_MARK"),
    )
}


def _pitch_line(name: str) -> Line2:
    start, end = (np.asarray(p, dtype=np.float64)[:2] for p in PITCH.line_extremities[name])
    return Line2(start, (end - start) / np.linalg.norm(end - start))


@dataclass(frozen=True)
class Recipe:
    """How one keypoint is found; which fields are set depends on the keypoint's kind."""

    lines: tuple[str, ...] = ()
    circle: str | None = None
    upper: bool | None = None
    tangent_from: int | None = None
    reference_side: float = 0.0
    """Orientation sign of (target, other root, reference) on the pitch; 0 when no reference."""
    endpoints: tuple[tuple[int, bool], ...] = ()
    """Line-line keypoints at the line's ends, each with: is the target the root nearer to it?"""


def _class_name(text: str) -> str:
    name = _CLASS_BY_STRIPPED.get(text.strip())
    if name is None:
        raise ValueError(f"keypoints57.tsv names an unknown line class {text!r}")
    return name


def _other_root(target: np.ndarray, roots: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return max(roots, key=lambda r: float(np.linalg.norm(r - target)))


def _line_conic_recipe(kp: Keypoint) -> Recipe:
    """Parse 'LINE ∩ CIRCLE; upper|lower root' and precompute how to tell the roots apart.

    The tsv's image-y rule breaks for a camera looking along the long axis (both crossings then
    sit at the same image y), so a projective invariant is used where there is one: the
    orientation of (target, other crossing, circle centre) is the same in the image as on the
    pitch when the image reference is the ellipse's centre. That centre is the image of a point
    r²/D from the circle's centre (D: distance to the camera's vanishing ground line), about 1-2 m
    for broadcast cameras, so it sits on the circle centre's side of any chord ≥3 m from it (the
    penalty-area line). The halfway line passes through its circle's centre, so there the roots
    are ordered along the line from a touch-line keypoint instead, and by image y as a last resort.
    """
    head, _, tail = kp.derived_from.partition(";")
    line_text, circle_text = (part.strip() for part in head.split("∩"))
    line, circle = _class_name(line_text), _class_name(circle_text)
    if "upper" not in tail and "lower" not in tail:
        raise ValueError(f"keypoint {kp.index}: no upper/lower root in {kp.derived_from!r}")
    pitch_line, pitch_circle = _pitch_line(line), PITCH_CIRCLES[circle]
    roots = line_ellipse_intersections(pitch_line, pitch_circle)
    target = np.array(kp.xyz[:2])
    other = _other_root(target, roots)
    offset = abs(cross(pitch_circle.center - pitch_line.point, pitch_line.direction))
    side = 0.0
    if offset >= _CONIC_REFERENCE_MIN_OFFSET_M:
        side = math.copysign(1.0, orientation(target, other, pitch_circle.center))
    endpoints = tuple(
        (end, bool(np.linalg.norm(target - XYZ[end, :2]) < np.linalg.norm(other - XYZ[end, :2])))
        for end in (INDEX_BY_NAME[n] for n in PITCH.line_extremities_keys[line])
    )
    return Recipe(
        lines=(line,), circle=circle, upper="upper" in tail, reference_side=side, endpoints=endpoints
    )


def _tangent_recipe(kp: Keypoint) -> Recipe:
    """Parse 'CIRCLE (...) tangent ... from kpN'; the root is told apart by orientation.

    The two tangent points and the outside point form a triangle whose orientation a camera above
    the ground preserves, so the tsv's 'root idx' (an image-order convention) is not needed.
    """
    match = re.match(r"(Circle \w+) .*from kp(\d+)", kp.derived_from)
    if match is None:
        raise ValueError(f"keypoint {kp.index}: cannot parse {kp.derived_from!r}")
    circle, source = _class_name(match.group(1)), int(match.group(2))
    external = XYZ[source, :2]
    target = np.array(kp.xyz[:2])
    other = _other_root(target, tangent_points(PITCH_CIRCLES[circle], external))
    side = math.copysign(1.0, orientation(target, other, external))
    return Recipe(circle=circle, tangent_from=source, reference_side=side)


def _recipe(kp: Keypoint) -> Recipe:
    if kp.kind == "line-line":
        return Recipe(lines=tuple(_class_name(t) for t in kp.derived_from.split("∩")))
    if kp.kind == "line-conic":
        return _line_conic_recipe(kp)
    if kp.kind == "conic-tangent":
        return _tangent_recipe(kp)
    if kp.kind == "homography":
        return Recipe()
    raise ValueError(f"keypoint {kp.index}: unknown kind {kp.kind!r}")


RECIPES: tuple[Recipe, ...] = tuple(_recipe(kp) for kp in KEYPOINTS)
"""One per keypoint, in table order."""
