"""The 57 keypoints of a frame, derived from its SoccerNet line annotation.

SoccerNet labels lines, not points, but a heatmap model needs points. Every keypoint is a fixed
point of the pitch (``keypoints57.tsv``), so each can be found in an image from the annotated lines:
two fitted lines meet at a corner; a fitted line crosses a circle's ellipse; a tangent from a known
point touches an ellipse; anything else goes through a homography fitted to the ground points found.
With too few ground points for RANSAC, a fitted circle lends more: the pole of each annotated
line with respect to it. A line-line point from short, sparse lines crossing at a shallow angle
takes the homography's position where the two agree. A long-axis view is then relabelled so
that its left/right is a function of the image.

This is pure geometry on dicts and arrays: no image I/O, so the loader can derive once per
dataset and cache the result under ``KEYPOINTS_VERSION``.
"""

from __future__ import annotations

import math
import re

import numpy as np

from trainer.data.keypoints.geometry import (
    FittedArc,
    Line2,
    fit_arc,
    fit_line,
    fits_locally,
    intersect_lines,
    intersection_spread,
    line_ellipse_intersections,
    orientation,
    tangent_points,
)
from trainer.data.keypoints.homography import (
    apply_homography,
    fit_ground_homography,
    fit_homography_with_poles,
    refine_homography,
)
from trainer.data.keypoints.recipes import PITCH_CIRCLES, RECIPES, Recipe
from trainer.data.keypoints.table import (
    INVISIBLE,
    KEYPOINTS,
    MIRROR_INDEX,
    NUM_KEYPOINTS,
    ON_GROUND,
    SYMMETRIC_PAIRS,
    UNKNOWN,
    VISIBILITY_MARGIN_PX,
    VISIBLE,
    XYZ,
)

KEYPOINTS_VERSION = "kp57-derive-2"
"""Bumped whenever the derivation changes, so caches keyed on it are rebuilt."""

_IGNORED_CLASSES = frozenset({"Line unknown", "Goal unknown"})
_CLICK_NOISE_PX = 1.0
"""How far a hand click lands from its line when a frame's own clicks cannot tell (about a pixel)."""
_UNSURE_CROSSING_PX = 2.0
"""A line-line point expected to be off by more than this defers to an agreeing homography."""
_AGREEMENT = 3.0
"""...that agrees with it to within this many times that expected error."""
_MIN_PAIR_LENGTH_PX = 2.0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _annotation_points(annotation: dict, width: int, height: int) -> dict[str, np.ndarray]:
    """Pixel points per usable line class; malformed entries are dropped, not fatal."""
    scale = np.array([width - 1, height - 1], dtype=np.float64)
    lines: dict[str, np.ndarray] = {}
    for name, points in annotation.items():
        if name in _IGNORED_CLASSES or not isinstance(points, list):
            continue
        xy = [
            (float(p["x"]), float(p["y"]))
            for p in points
            if isinstance(p, dict) and _is_number(p.get("x")) and _is_number(p.get("y"))
        ]
        if len(xy) >= 2:
            lines[name] = np.array(xy, dtype=np.float64) * scale
    return lines


class _LineFits:
    """One frame's fitted lines: each whole-line fit is made once, though up to 8 keypoints use it."""

    def __init__(self, lines: dict[str, np.ndarray]) -> None:
        self._lines = lines
        self._whole: dict[str, Line2 | None] = {}

    def whole(self, name: str) -> Line2 | None:
        if name not in self._whole:
            self._whole[name] = fit_line(self._lines[name])
        return self._whole[name]

    def click_noise(self) -> float:
        """How far this frame's clicks land from their lines (RMS, px), pooled over its straight lines.

        Synthetic or carefully placed clicks sit on the line, and then a crossing of short lines
        is as good as any homography; hand clicks scatter about a pixel. Lines of two clicks say
        nothing, so a frame with only those is given _CLICK_NOISE_PX.
        """
        fitted = [self.whole(name) for name in self._lines if name not in PITCH_CIRCLES]
        misfit = sum(line.misfit for line in fitted if line is not None)
        freedom = sum(line.clicks - 2 for line in fitted if line is not None)
        return math.sqrt(misfit / freedom) if freedom > 0 else _CLICK_NOISE_PX

    def near(self, name: str, anchor: np.ndarray) -> Line2 | None:
        """fit_line(points, near=anchor), reusing the whole-line fit where the anchor would be ignored."""
        points = self._lines[name]
        return fit_line(points, near=anchor) if fits_locally(points) else self.whole(name)


def _line_line(recipe: Recipe, lines: dict[str, np.ndarray], fits: _LineFits) -> tuple[np.ndarray, float] | None:
    """Intersect two fitted lines, refitting each near the first estimate (lens curvature).

    Returns the point and its expected error per pixel of click noise (see intersection_spread).
    """
    first, second = recipe.lines
    if first not in lines or second not in lines:
        return None
    l1, l2 = fits.whole(first), fits.whole(second)
    if l1 is None or l2 is None:
        return None
    point = intersect_lines(l1, l2)
    if point is None:
        return None
    l1, l2 = fits.near(first, point), fits.near(second, point)
    if l1 is None or l2 is None:
        return None
    point = intersect_lines(l1, l2)
    return None if point is None else (point, intersection_spread(l1, l2, point, 1.0))


def _line_conic(
    recipe: Recipe, lines: dict[str, np.ndarray], fits: _LineFits, arcs: dict[str, FittedArc], xy: np.ndarray
) -> np.ndarray | None:
    """Cross a fitted line with a fitted ellipse and pick the root that is this keypoint."""
    arc = arcs.get(recipe.circle)
    if arc is None or recipe.lines[0] not in lines:
        return None
    line = fits.near(recipe.lines[0], arc.ellipse.center)
    roots = None if line is None else line_ellipse_intersections(line, arc.ellipse)
    if roots is None:
        return None
    first, second = roots
    if recipe.reference_side != 0.0:
        side = orientation(first, second, arc.ellipse.center)
        point = first if math.copysign(1.0, side) == recipe.reference_side else second
    else:
        point = _order_along_line(recipe, first, second, xy)
    return point if arc.covers(point) else None


def _order_along_line(recipe: Recipe, first: np.ndarray, second: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Pick a root by its order from a known end of the line (a projective invariant), else by image y."""
    for end, target_nearer in recipe.endpoints:
        if np.isfinite(xy[end]).all():
            first_nearer = np.linalg.norm(first - xy[end]) < np.linalg.norm(second - xy[end])
            return first if first_nearer == target_nearer else second
    upper_first = first[1] < second[1]
    return first if upper_first == recipe.upper else second


def _tangent(recipe: Recipe, arcs: dict[str, FittedArc], xy: np.ndarray) -> np.ndarray | None:
    """Tangent point from another keypoint's image position, picked by triangle orientation."""
    arc = arcs.get(recipe.circle)
    external = xy[recipe.tangent_from]
    if arc is None or not np.isfinite(external).all():
        return None
    roots = tangent_points(arc.ellipse, external)
    if roots is None:
        return None
    first, second = roots
    side = orientation(first, second, external)
    point = first if math.copysign(1.0, side) == recipe.reference_side else second
    return point if arc.covers(point) else None


def derive_keypoints_with_sources(
    annotation: dict, width: int, height: int, *, margin: float = VISIBILITY_MARGIN_PX, resolve_ambiguity: bool = True
) -> tuple[np.ndarray, list[str]]:
    """derive_keypoints, plus which method placed each point; the split shows where errors come from."""
    lines = _annotation_points(annotation, width, height)
    max_axis = 20.0 * max(width, height)
    arcs = {}
    for name in PITCH_CIRCLES:
        arc = fit_arc(lines[name], max_axis) if name in lines else None
        if arc is not None:
            arcs[name] = arc

    fits = _LineFits(lines)
    xy = np.full((NUM_KEYPOINTS, 2), np.nan)
    spread = np.full(NUM_KEYPOINTS, np.nan)
    sources = [""] * NUM_KEYPOINTS
    for kp, recipe in zip(KEYPOINTS, RECIPES):
        crossing = _line_line(recipe, lines, fits) if kp.kind == "line-line" else None
        if crossing is not None and np.isfinite(crossing[0]).all():
            xy[kp.index], spread[kp.index], sources[kp.index] = crossing[0], crossing[1], "line-line"
    # Then, in this order: line-conic roots are ordered by line-line points, tangents start from them.
    for kind, place in (
        ("line-conic", lambda r: _line_conic(r, lines, fits, arcs, xy)),
        ("conic-tangent", lambda r: _tangent(r, arcs, xy)),
    ):
        for kp, recipe in zip(KEYPOINTS, RECIPES):
            if kp.kind == kind:
                point = place(recipe)
                if point is not None and np.isfinite(point).all():
                    xy[kp.index], sources[kp.index] = point, kind

    state = np.where(np.isfinite(xy).all(axis=1), VISIBLE, UNKNOWN)
    found = np.flatnonzero(ON_GROUND & (state == VISIBLE))
    fit = fit_ground_homography(XYZ[found, :2], xy[found]) if len(found) >= 4 else None
    homography: np.ndarray | None = None
    if fit is not None:
        homography, inliers = fit
        homography = refine_homography(homography, XYZ[found[inliers], :2], xy[found[inliers]], lines)
    elif arcs:
        inliers = np.ones(len(found), dtype=bool)
        ellipses = {name: arc.ellipse for name, arc in arcs.items()}
        homography = fit_homography_with_poles(XYZ[found, :2], xy[found], lines, fits.whole, ellipses)
    if homography is not None:
        projected, w = apply_homography(homography, XYZ[:, :2])
        # Conic-derived points that disagree with the consensus came from a poor ellipse: replace them.
        conic_outliers = [i for i, ok in zip(found, inliers) if not ok and sources[i] != "line-line"]
        fill = ON_GROUND & (state == UNKNOWN)
        fill[conic_outliers] = inliers.sum() >= 5
        # A crossing of short, sparsely clicked lines at a shallow angle is less sure than the
        # homography every click fits: where the two agree within the crossing's own uncertainty,
        # the homography's point is the better one (a disagreement means the homography is off
        # there). The source stays "line-line": the crossing found it, and is checked as such.
        spread *= fits.click_noise()
        with np.errstate(invalid="ignore"):
            agrees = np.hypot(*(projected - xy).T) < _AGREEMENT * spread
            unsure = ON_GROUND & (spread > _UNSURE_CROSSING_PX) & agrees & (w > 0)
        xy[unsure] = projected[unsure]
        xy[fill] = projected[fill]
        state[fill] = VISIBLE
        for i in np.flatnonzero(fill):
            sources[i] = "homography"
        behind = ON_GROUND & (w <= 0.0)
        xy[behind] = np.nan
        state[behind] = INVISIBLE

    x, y = xy[:, 0], xy[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= -margin) & (x <= width - 1 + margin) & (y >= -margin) & (y <= height - 1 + margin)
    state[(state == VISIBLE) & ~inside] = INVISIBLE

    kps = np.c_[xy, state].astype(np.float32)
    if resolve_ambiguity and needs_mirroring(kps, annotation):
        kps = kps[MIRROR_INDEX]
        sources = [sources[i] for i in MIRROR_INDEX]
    return kps, sources


def derive_keypoints(
    annotation: dict, width: int, height: int, *, margin: float = VISIBILITY_MARGIN_PX, resolve_ambiguity: bool = True
) -> np.ndarray:
    """The 57 keypoints of one SoccerNet annotation, as float32 (57, 3): x, y in pixels, state.

    The annotation maps line classes to points normalised by (width − 1, height − 1). State is
    1 visible, 0 invisible (placed, but outside the image grown by ``margin`` px, or behind the
    camera, where x, y are NaN), -1 unknown (not placeable: x, y NaN). Unknown points are masked
    out of the loss; invisible ones are taught as empty heatmaps, so the two must not be confused.
    """
    kps, _ = derive_keypoints_with_sources(
        annotation, width, height, margin=margin, resolve_ambiguity=resolve_ambiguity
    )
    return kps


# --------------------------------------------------------------------------------------------
# Left/right ambiguity, flips, output
# --------------------------------------------------------------------------------------------


def _looks_along_long_axis(kps: np.ndarray) -> bool:
    """True when at least half the visible cross-pitch pairs lie nearly horizontal in the image.

    Then the camera looks along the pitch's length, and whether the annotator called the visible
    goal 'left' or 'right' is arbitrary. A pair that collapsed to one point has no direction and
    is not counted.
    """
    visible = kps[:, 2] == VISIBLE
    pairs = [
        (i, j)
        for i, j in SYMMETRIC_PAIRS
        if visible[i] and visible[j] and np.hypot(*(kps[i, :2] - kps[j, :2])) >= _MIN_PAIR_LENGTH_PX
    ]
    if not pairs:
        return False
    horizontal = 0
    for i, j in pairs:
        dx, dy = abs(float(kps[i, 0] - kps[j, 0])), abs(float(kps[i, 1] - kps[j, 1]))
        horizontal += dy < 1.0 or dx > 10.0 * dy
    return 2 * horizontal >= len(pairs)


def _side_of_class(name: str) -> str | None:
    """The pitch half a class names: its first 'left'/'right' ('Goal left post right' is left)."""
    match = re.search(r"\b(left|right)\b", name)
    return match.group(1) if match else None


def _near_side_is_right(kps: np.ndarray, annotation: dict) -> bool:
    """Whether the goal area nearest the camera (lowest in the image) is labelled 'right'."""
    visible = kps[:, 2] == VISIBLE
    left, right = visible & (XYZ[:, 0] < 0), visible & (XYZ[:, 0] > 0)
    if left.any() and right.any():
        return float(np.median(kps[right, 1])) > float(np.median(kps[left, 1]))
    sides = [_side_of_class(name) for name in annotation if name not in _IGNORED_CLASSES]
    return sides.count("right") > sides.count("left")


def needs_mirroring(kps: np.ndarray, annotation: dict) -> bool:
    """Whether resolve_left_right would relabel these keypoints."""
    return _looks_along_long_axis(kps) and _near_side_is_right(kps, annotation)


def resolve_left_right(kps: np.ndarray, annotation: dict) -> np.ndarray:
    """Relabel a long-axis view with the point reflection so the visible goal area is 'left'.

    Without this, the same picture would be taught as 'left' in one frame and 'right' in
    another; with it the labels of such views are a function of the image.
    """
    return kps[MIRROR_INDEX] if needs_mirroring(kps, annotation) else kps.copy()
