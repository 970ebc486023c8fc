"""frgan.metrics.expression: measures, alignment, apex and blink choice with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from frgan.metrics.expression import (
    amplitude_ratio,
    apex_frames,
    blink_frames,
    brow_height,
    expression_distance,
    eye_distance,
    eye_opening,
    mouth_opening,
    point_distances,
)
from frgan.render.face68 import FACE68_MEAN


def face(size: float = 30.0, centre=(32.0, 32.0)) -> np.ndarray:
    """The mean 68-point face [68,2] scaled to `size` px, at `centre`."""
    points = FACE68_MEAN[:, :2].astype(np.float64)
    points = points - points.mean(0)
    return points / np.ptp(points[:, 0]) * size + np.asarray(centre)


def similar(points: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return scale * points @ rotation.T + np.asarray(shift)


def open_mouth(points: np.ndarray, pixels: float) -> np.ndarray:
    """The lower inner lip (65-67) moved down by `pixels`."""
    opened = points.copy()
    opened[[65, 66, 67], 1] += pixels
    return opened


def test_a_similarity_copy_has_zero_aligned_distance_and_the_same_measures():
    base = face()
    moved = similar(base, 0.3, 1.7, (5.0, -3.0))
    aligned = point_distances(moved, base, aligned=True)
    raw = point_distances(moved, base)
    for group in ("all", "lips", "brows"):
        assert aligned[group] == pytest.approx(0.0, abs=1e-9)
        assert raw[group] > 1.0
    for measure in (mouth_opening, eye_opening, brow_height):
        assert measure(moved) == pytest.approx(measure(base))


def test_mouth_opened_by_k_pixels_gives_k_over_the_eye_distance():
    base = face()
    pixels = 3.0
    change = mouth_opening(open_mouth(base, pixels)) - mouth_opening(base)
    # the lower inner lip moved straight down: each of the three gaps grows by about `pixels`
    gaps = [np.linalg.norm(base[a] - base[b]) for a, b in ((61, 67), (62, 66), (63, 65))]
    opened = open_mouth(base, pixels)
    new_gaps = [np.linalg.norm(opened[a] - opened[b]) for a, b in ((61, 67), (62, 66), (63, 65))]
    assert change == pytest.approx((np.mean(new_gaps) - np.mean(gaps)) / eye_distance(base))
    assert change == pytest.approx(pixels / eye_distance(base), rel=0.05)
    # the same opening seen on a turned, larger face: the same (normalised) change
    turned = similar(open_mouth(base, pixels), -0.2, 2.0, (1, 1))
    assert mouth_opening(turned) - mouth_opening(similar(base, -0.2, 2.0, (1, 1))) == (
        pytest.approx(change)
    )
    # aligned distance of the lips: only the three moved points differ, by `pixels` each
    assert point_distances(open_mouth(base, pixels), base)["lips"] == pytest.approx(3 * pixels / 20)


def test_eye_opening_and_brow_height_follow_lids_and_brows():
    base = face()
    closed = base.copy()
    closed[[37, 38, 43, 44]] = closed[[41, 40, 47, 46]]  # upper lids onto lower lids
    assert eye_opening(closed) == pytest.approx(0.0, abs=1e-9)
    lowered = base.copy()
    lowered[17:27, 1] += 1.5  # image y grows downwards: brows 1.5 px lower
    assert brow_height(lowered) < brow_height(base)
    assert brow_height(base) - brow_height(lowered) == pytest.approx(
        1.5 / eye_distance(base), rel=0.1
    )


def test_missing_faces_give_nan_not_numbers():
    missing = np.full((68, 2), np.nan)
    assert np.isnan(mouth_opening(missing))
    assert np.isnan(point_distances(missing, face(), aligned=True)["all"])
    with pytest.raises(ValueError, match="68-point"):
        mouth_opening(np.zeros((5, 2)))


def take_with_expression() -> tuple[np.ndarray, list[int]]:
    """12 frames under a moving head: the mouth opens 0..5 px and back; frame 4 blinks."""
    base = face()
    opening = [0, 0.5, 1, 2, 5.5, 4, 5, 3, 2, 1, 0.5, 0]
    frames = []
    for t, pixels in enumerate(opening):
        frame = open_mouth(base, pixels)
        if t == 4:
            frame[[37, 38, 43, 44]] = frame[[41, 40, 47, 46]]
        frames.append(similar(frame, 0.05 * t, 1 + 0.02 * t, (t, -t)))
    return np.stack(frames), opening


def test_apex_frames_are_the_farthest_from_frame_0_without_blinks():
    take, opening = take_with_expression()
    distance = expression_distance(take)
    assert distance[0] == pytest.approx(0.0, abs=1e-9)
    assert np.argsort(distance[[0, 3, 6]]).tolist() == [0, 1, 2], "pose is removed"
    assert blink_frames(take).tolist() == [t == 4 for t in range(12)]
    # frame 4 opens the mouth most but blinks: the next widest openings are chosen
    assert apex_frames(take, 3).tolist() == [5, 6, 7]
    assert apex_frames(take[:2], 3).tolist() == [1], "a short take gives what it has"


def test_amplitude_ratio_is_the_slope_through_the_origin():
    truth = np.array([0.1, 0.2, -0.1, np.nan])
    assert amplitude_ratio(truth * 0.5, truth) == pytest.approx(0.5)
    assert amplitude_ratio(-truth, truth) == pytest.approx(-1.0)
    assert amplitude_ratio(np.zeros(3), np.zeros(3)) is None
