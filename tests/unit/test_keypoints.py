"""Keypoint derivation checked against exact ground truth: the true camera of synthetic frames.

All 57 keypoints are fixed pitch points, so projecting them with the camera that rendered a frame
gives the position the derivation from the frame's line annotation must reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from SoccerNet.Evaluation.utils_calibration import Camera

from trainer.data.keypoints.derivation import (
    KEYPOINTS_VERSION,
    derive_keypoints,
    derive_keypoints_with_sources,
    needs_mirroring,
    resolve_left_right,
)
from trainer.data.keypoints.table import (
    FLIP_INDEX,
    KEYPOINTS,
    MIRROR_INDEX,
    NUM_KEYPOINTS,
    SYMMETRIC_PAIRS,
    flip_keypoints,
    keypoints_to_json,
)
from trainer.data.synthetic.camera import camera_looking_at
from trainer.data.synthetic.generate import render_frame
from trainer.data.synthetic.render import render_view

W, H = 960, 540
MARGIN = 3.0
XYZ = np.array([kp.xyz for kp in KEYPOINTS])

# Hand-placed cameras make sure the rarer constructions (tangents from the near touch line,
# both goal mouths, both penalty arcs) are exercised whatever the random sampler draws.
FIXED_SHOTS = [
    ((-5.0, 62.0, -16.0), (-46.0, 0.0, 0.0), 18.0),
    ((5.0, 62.0, -16.0), (46.0, 0.0, 0.0), 18.0),
    ((-8.0, 60.0, -15.0), (-38.0, -4.0, 0.0), 30.0),
    ((8.0, 60.0, -15.0), (38.0, -4.0, 0.0), 30.0),
    ((2.0, 58.0, -18.0), (0.0, 16.0, 0.0), 58.0),
    ((-3.0, 66.0, -20.0), (0.0, 4.0, 0.0), 62.0),
    ((0.0, 60.0, -14.0), (0.0, -6.0, 0.0), 35.0),
    ((-10.0, 64.0, -17.0), (-28.0, 0.0, 0.0), 48.0),
    ((10.0, 64.0, -17.0), (28.0, 0.0, 0.0), 48.0),
]
RANDOM_FRAMES = 40


@dataclass
class Frame:
    annotation: dict
    truth: np.ndarray  # (57, 3): true x, y and the true state (1 visible, 0 not)
    kps: np.ndarray
    sources: list[str]


def true_keypoints(camera_json: dict) -> np.ndarray:
    """Project the 57 table points with SoccerNet's own Camera (behind the camera: not visible)."""
    camera = Camera(W, H)
    camera.from_json_parameters(camera_json)
    out = np.zeros((NUM_KEYPOINTS, 3))
    for i, xyz in enumerate(XYZ):
        p = camera.project_point(xyz)
        if p[2] == 0:
            out[i] = (np.nan, np.nan, 0.0)
        else:
            inside = -MARGIN <= p[0] <= W - 1 + MARGIN and -MARGIN <= p[1] <= H - 1 + MARGIN
            out[i] = (p[0], p[1], float(inside))
    return out


def make_frame(annotation: dict, camera_json: dict) -> Frame:
    kps, sources = derive_keypoints_with_sources(annotation, W, H, margin=MARGIN)
    return Frame(annotation, true_keypoints(camera_json), kps, sources)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    out = []
    for i in range(RANDOM_FRAMES):
        _, annotation, camera_json = render_frame(np.random.default_rng([2024, i]), W, H)
        out.append(make_frame(annotation, camera_json))
    for k, (position, target, fov) in enumerate(FIXED_SHOTS):
        camera_json = camera_looking_at(np.array(position), np.array(target), fov, 0.7, W, H)
        _, annotation = render_view(camera_json, np.random.default_rng([99, k]), W, H)
        out.append(make_frame(annotation, camera_json))
    return out


def errors_by_source(frames: list[Frame]) -> dict[str, list[tuple[float, int, int]]]:
    """(pixel error, frame, keypoint) for every visible derived point, by the method that placed it."""
    out: dict[str, list[tuple[float, int, int]]] = {}
    for f, frame in enumerate(frames):
        for i in range(NUM_KEYPOINTS):
            if frame.kps[i, 2] == 1.0 and np.isfinite(frame.truth[i, 0]):
                error = float(np.hypot(*(frame.kps[i, :2] - frame.truth[i, :2])))
                out.setdefault(frame.sources[i], []).append((error, f, i))
    return out


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def test_table_has_57_points_with_unique_names() -> None:
    assert len(KEYPOINTS) == NUM_KEYPOINTS == 57
    assert [kp.index for kp in KEYPOINTS] == list(range(57))
    assert len({kp.name for kp in KEYPOINTS}) == 57
    assert {kp.kind for kp in KEYPOINTS} == {"line-line", "line-conic", "conic-tangent", "homography"}
    assert isinstance(KEYPOINTS_VERSION, str) and KEYPOINTS_VERSION


def test_flip_and_mirror_indices_are_involutions_matching_the_geometry() -> None:
    assert FLIP_INDEX.dtype == np.int64 and FLIP_INDEX.shape == (57,)
    assert MIRROR_INDEX.dtype == np.int64 and MIRROR_INDEX.shape == (57,)
    np.testing.assert_array_equal(FLIP_INDEX[FLIP_INDEX], np.arange(57))
    np.testing.assert_array_equal(MIRROR_INDEX[MIRROR_INDEX], np.arange(57))
    # A horizontal image flip seen from the main camera is x -> -x; the mirror is (x, y) -> (-x, -y).
    np.testing.assert_allclose(XYZ[FLIP_INDEX], XYZ * [-1, 1, 1], atol=1e-3)
    np.testing.assert_allclose(XYZ[MIRROR_INDEX], XYZ * [-1, -1, 1], atol=1e-3)


def test_symmetric_pairs_share_pitch_x_and_include_the_documented_ones() -> None:
    pairs = {tuple(p) for p in SYMMETRIC_PAIRS.tolist()}
    assert {(0, 1), (12, 13), (14, 15), (40, 41), (44, 45), (51, 52)} <= pairs
    for i, j in pairs:
        assert XYZ[i, 0] == XYZ[j, 0] and XYZ[i, 1] == -XYZ[j, 1] != 0


# ---------------------------------------------------------------------------------------------
# Accuracy against the true camera
# ---------------------------------------------------------------------------------------------

TOLERANCES = {  # median px, 90th percentile px, minimum number of points checked
    "line-line": (1.0, 2.5, 150),
    "line-conic": (3.0, 4.0, 40),
    "conic-tangent": (3.0, 5.0, 40),
    "homography": (5.0, 8.0, 150),
}


@pytest.mark.parametrize("source", sorted(TOLERANCES))
def test_derived_points_match_the_true_projection(frames: list[Frame], source: str) -> None:
    median_limit, p90_limit, min_count = TOLERANCES[source]
    found = errors_by_source(frames).get(source, [])
    errors = np.array([e for e, _, _ in found])
    assert len(errors) >= min_count, f"{source}: only {len(errors)} points checked"
    assert len({f for _, f, _ in found}) >= 8, f"{source}: too few frames"
    median, p90 = float(np.median(errors)), float(np.percentile(errors, 90))
    print(f"{source}: n={len(errors)} median={median:.2f} p90={p90:.2f} max={errors.max():.2f} px")
    assert median <= median_limit
    assert p90 <= p90_limit


@pytest.mark.parametrize("source", ["line-line", "line-conic", "conic-tangent", "homography"])
def test_every_kind_is_checked_on_both_halves(frames: list[Frame], source: str) -> None:
    keypoints = {i for _, _, i in errors_by_source(frames).get(source, [])}
    assert any(XYZ[i, 0] < 0 for i in keypoints) and any(XYZ[i, 0] > 0 for i in keypoints)


def test_each_construction_is_exercised(frames: list[Frame]) -> None:
    """Every line-conic and tangent keypoint is placed by its own construction somewhere."""
    placed = {(frame.sources[i], i) for frame in frames for i in range(57) if frame.kps[i, 2] == 1.0}
    for kp in KEYPOINTS:
        if kp.kind in ("line-conic", "conic-tangent"):
            assert (kp.kind, kp.index) in placed, kp.name
    crossbar = [i for i in range(57) if XYZ[i, 2] != 0]
    assert all(("line-line", i) in placed for i in crossbar)


def test_line_line_points_stay_close_even_at_worst(frames: list[Frame]) -> None:
    worst = max(e for e, _, _ in errors_by_source(frames)["line-line"])
    assert worst < 5.0


def test_state_matches_the_true_projection_away_from_the_border(frames: list[Frame]) -> None:
    checked = mismatched = 0
    for frame in frames:
        for i in range(NUM_KEYPOINTS):
            if frame.kps[i, 2] == -1.0:
                continue
            x, y, visible = frame.truth[i]
            if not np.isfinite(x):
                assert frame.kps[i, 2] == 0.0  # behind the camera
                continue
            distance_to_edge = min(
                abs(x + MARGIN), abs(W - 1 + MARGIN - x), abs(y + MARGIN), abs(H - 1 + MARGIN - y)
            )
            if distance_to_edge < 10.0:
                continue
            checked += 1
            mismatched += frame.kps[i, 2] != visible
    assert checked > 1500
    assert mismatched == 0


def test_truly_visible_points_are_rarely_unknown(frames: list[Frame]) -> None:
    visible = sum(int(f.truth[i, 2] == 1.0) for f in frames for i in range(57))
    unknown = sum(int(f.truth[i, 2] == 1.0 and f.kps[i, 2] == -1.0) for f in frames for i in range(57))
    assert unknown <= 0.05 * visible


def test_broadcast_views_are_not_relabelled(frames: list[Frame]) -> None:
    for frame in frames:
        raw = derive_keypoints(frame.annotation, W, H, resolve_ambiguity=False)
        assert not needs_mirroring(raw, frame.annotation)


# ---------------------------------------------------------------------------------------------
# Unknown versus invisible, robustness
# ---------------------------------------------------------------------------------------------


def test_missing_lines_give_unknown_points_not_invisible(frames: list[Frame]) -> None:
    frame = next(f for f in frames if {"Side line left", "Big rect. left bottom"} <= f.annotation.keys())
    only_two = {name: frame.annotation[name] for name in ("Side line left", "Big rect. left bottom")}
    kps = derive_keypoints(only_two, W, H)
    assert kps.shape == (57, 3) and kps.dtype == np.float32
    assert kps[10, 2] in (0.0, 1.0)  # L_PENALTY_AREA_BL_CORNER: the one intersection
    others = np.delete(np.arange(57), 10)
    assert (kps[others, 2] == -1.0).all()
    assert np.isnan(kps[others, :2]).all()


def test_empty_and_malformed_annotations_do_not_crash() -> None:
    assert (derive_keypoints({}, W, H)[:, 2] == -1.0).all()
    messy = {
        "Line unknown": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.9}],
        "Side line left": [{"x": 0.2, "y": 0.2}],
        "Big rect. left bottom": [{"x": "a"}, None, {"x": float("nan"), "y": 0.3}],
        "Circle central": [{"x": 0.5, "y": 0.5}] * 6,
    }
    assert (derive_keypoints(messy, W, H)[:, 2] == -1.0).all()


def test_margin_decides_visibility() -> None:
    """Two lines meeting 2 px left of the image: visible with a 3 px margin, invisible with 1 px."""

    def clicks(*pixels: tuple[float, float]) -> list[dict]:
        return [{"x": x / (W - 1), "y": y / (H - 1)} for x, y in pixels]

    annotation = {
        "Side line left": clicks((49.0, 202.0), (99.0, 302.0)),
        "Big rect. left bottom": clicks((198.0, 110.0), (398.0, 120.0)),
    }
    wide = derive_keypoints(annotation, W, H, margin=3.0)
    tight = derive_keypoints(annotation, W, H, margin=1.0)
    np.testing.assert_allclose(wide[10, :2], (-2.0, 100.0), atol=1e-3)
    assert wide[10, 2] == 1.0 and tight[10, 2] == 0.0
    np.testing.assert_array_equal(tight[10, :2], wide[10, :2])


# ---------------------------------------------------------------------------------------------
# Flip, mirror, JSON
# ---------------------------------------------------------------------------------------------


def test_flip_twice_is_identity_and_once_swaps_partners(frames: list[Frame]) -> None:
    for frame in frames[:10]:
        once = flip_keypoints(frame.kps, W)
        twice = flip_keypoints(once, W)
        np.testing.assert_array_equal(twice[:, 2], frame.kps[:, 2])
        np.testing.assert_allclose(twice, frame.kps, rtol=0, atol=1e-3)  # float32 rounding of (W-1) - x
        for i in np.flatnonzero(frame.kps[:, 2] == 1.0):
            j = FLIP_INDEX[i]
            assert once[j, 2] == 1.0
            assert once[j, 0] == pytest.approx(W - 1 - frame.kps[i, 0])
            assert once[j, 1] == frame.kps[i, 1]


def test_long_axis_view_is_relabelled_so_the_visible_goal_area_is_left() -> None:
    # Behind the right goal, looking down the pitch towards the left one.
    camera_json = camera_looking_at(np.array([78.0, 4.0, -16.0]), np.array([25.0, 0.0, 0.0]), 60.0, 0.5, W, H)
    _, annotation = render_view(camera_json, np.random.default_rng(3), W, H)
    truth = true_keypoints(camera_json)

    raw = derive_keypoints(annotation, W, H, resolve_ambiguity=False)
    assert needs_mirroring(raw, annotation)
    near_goal_area_right = [20, 21, 22, 23]
    assert (raw[near_goal_area_right, 2] == 1.0).all()
    assert np.median(raw[near_goal_area_right, 1]) > np.median(raw[[4, 5, 6, 7], 1])  # right is nearer

    resolved = derive_keypoints(annotation, W, H)
    np.testing.assert_array_equal(resolved, resolve_left_right(raw, annotation))
    near_goal_area_left = [4, 5, 6, 7]
    assert (resolved[near_goal_area_left, 2] == 1.0).all()
    assert np.median(resolved[near_goal_area_left, 1]) > np.median(resolved[near_goal_area_right, 1])
    # Relabelled points sit where the true camera sees their point-reflected partners.
    visible = resolved[:, 2] == 1.0
    errors = np.hypot(*(resolved[visible, :2] - truth[MIRROR_INDEX][visible, :2]).T)
    assert visible.sum() >= 30
    assert np.median(errors) < 1.0 and errors.max() < 6.0


def test_one_sided_long_axis_view_goes_by_class_names() -> None:
    """With only one half visible, the class names tell which side the annotator called it."""
    camera_json = camera_looking_at(np.array([80.0, 2.0, -14.0]), np.array([47.0, 0.0, 0.0]), 40.0, 0.0, W, H)
    _, annotation = render_view(camera_json, np.random.default_rng(5), W, H)
    raw = derive_keypoints(annotation, W, H, resolve_ambiguity=False)
    visible = raw[:, 2] == 1.0
    assert visible.any() and not (visible & (XYZ[:, 0] < 0)).any()
    assert needs_mirroring(raw, annotation)
    resolved = derive_keypoints(annotation, W, H)
    assert (resolved[:, 2] == 1.0).any() and not ((resolved[:, 2] == 1.0) & (XYZ[:, 0] > 0)).any()


def test_keypoints_to_json_keeps_only_visible_points(frames: list[Frame]) -> None:
    kps = frames[0].kps
    out = keypoints_to_json(kps)
    assert len(out) == 57
    for (x, y, state), item in zip(kps, out):
        if state == 1.0:
            assert item == [pytest.approx(float(x), abs=1e-3), pytest.approx(float(y), abs=1e-3)]
        else:
            assert item is None
    assert all(item is None or all(math.isfinite(v) for v in item) for item in out)
