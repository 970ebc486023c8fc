"""Expression geometry on the 68 landmarks (pure NumPy): opening and height measures, pose
alignment, landmark distances, apex and blink frames, amplitude ratios.

Landmarks are (x, y) arrays [..., 68, 2] (a z column, if any, is ignored) in the usual 68-point
order (frgan/data/landmarks/mediapipe_68.py). A frame without a face is all NaN; every measure
of it is NaN, never a made-up number.

Measures, each normalised by the face's size so that head distance does not matter:
    mouth_opening: inner-lip gap (61-67, 62-66, 63-65, mean) over the distance of the eye centres
    eye_opening:   lid gap (37-41, 38-40, and the other eye's) over the eye's width, both eyes
    brow_height:   brow centre to eye centre over the distance of the eye centres, both sides
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from frgan.data.retarget import apply_similarity, similarity_transform
from frgan.data.topology import FACE68_ANCHORS

LIPS = np.arange(48, 68)
BROWS = np.arange(17, 27)
POINT_GROUPS = {"all": np.arange(68), "lips": LIPS, "brows": BROWS}

_LEFT_EYE, _RIGHT_EYE = np.arange(36, 42), np.arange(42, 48)
_LEFT_BROW, _RIGHT_BROW = np.arange(17, 22), np.arange(22, 27)
_INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
# (upper lid, lower lid) pairs and (outer, inner) corners of each eye
_LID_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
_EYE_CORNERS = ((36, 39), (42, 45))

# A frame is a blink when its eyes are open less than this fraction of the take's median.
DEFAULT_CLOSED_FRACTION = 0.5


def _xy(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2] != 68 or points.shape[-1] < 2:
        raise ValueError(f"need 68-point landmarks [..., 68, 2+], got shape {points.shape}")
    return points[..., :2]


def _gap(points: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    return np.mean(
        [np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1) for a, b in pairs], axis=0
    )


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """[...]: distance between the two eye centres (mean of each eye's six points)."""
    points = _xy(landmarks)
    left, right = points[..., _LEFT_EYE, :].mean(-2), points[..., _RIGHT_EYE, :].mean(-2)
    return np.linalg.norm(left - right, axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """[...]: inner-lip gap over the eye distance (0: lips closed)."""
    points = _xy(landmarks)
    return _gap(points, _INNER_LIP_PAIRS) / eye_distance(points)


def eye_opening(landmarks: np.ndarray) -> np.ndarray:
    """[...]: lid gap over eye width, mean of both eyes (0: eyes closed)."""
    points = _xy(landmarks)
    ratios = [
        _gap(points, lids) / _gap(points, [corners])
        for lids, corners in zip(_LID_PAIRS, _EYE_CORNERS, strict=True)
    ]
    return np.mean(ratios, axis=0)


def brow_height(landmarks: np.ndarray) -> np.ndarray:
    """[...]: brow centre to eye centre over the eye distance, mean of both sides."""
    points = _xy(landmarks)
    heights = [
        np.linalg.norm(points[..., brow, :].mean(-2) - points[..., eye, :].mean(-2), axis=-1)
        for brow, eye in ((_LEFT_BROW, _LEFT_EYE), (_RIGHT_BROW, _RIGHT_EYE))
    ]
    return np.mean(heights, axis=0) / eye_distance(points)


MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mouth_opening": mouth_opening,
    "eye_opening": eye_opening,
    "brow_height": brow_height,
}


def align_to(
    landmarks: np.ndarray, reference: np.ndarray, anchors: np.ndarray | None = FACE68_ANCHORS
) -> np.ndarray:
    """landmarks [..., 68, 2] moved onto reference [..., 68, 2] (the same leading shape) by the
    2-D similarity (rotation, uniform scale, translation) fitted on `anchors` (None: all
    points): what remains is expression, not pose or size. NaN where either side is NaN."""
    points, target = _xy(landmarks), _xy(reference)
    if points.shape != target.shape:
        raise ValueError(f"cannot align landmarks {points.shape} onto {target.shape}")
    picked = slice(None) if anchors is None else anchors
    flat_points, flat_target = points.reshape(-1, 68, 2), target.reshape(-1, 68, 2)
    aligned = np.full_like(flat_points, np.nan)
    for index, (moving, fixed) in enumerate(zip(flat_points, flat_target, strict=True)):
        if np.isfinite(moving).all() and np.isfinite(fixed).all():
            fit = similarity_transform(moving[picked], fixed[picked])
            aligned[index] = apply_similarity(moving, *fit)
    return aligned.reshape(points.shape)


def point_distances(
    landmarks: np.ndarray, reference: np.ndarray, aligned: bool = False
) -> dict[str, np.ndarray]:
    """{group: [...]} mean point-to-point distance over each of POINT_GROUPS ("all", "lips",
    "brows"), as given (aligned=False) or after a similarity fit of all 68 points onto the
    reference (aligned=True, Procrustes: pose and size removed, the shapes compared)."""
    points, target = _xy(landmarks), _xy(reference)
    if aligned:
        points = align_to(points, target, anchors=None)
    distance = np.linalg.norm(points - target, axis=-1)
    return {group: distance[..., index].mean(-1) for group, index in POINT_GROUPS.items()}


def expression_distance(take: np.ndarray, anchors: np.ndarray = FACE68_ANCHORS) -> np.ndarray:
    """[T]: each frame's mean point distance from frame 0 after aligning it onto frame 0 on the
    anchors (head pose removed): how far the expression has moved. Frame 0 gives 0."""
    points = _xy(take)
    first = np.broadcast_to(points[:1], points.shape)
    aligned = align_to(points, first, anchors)
    return np.linalg.norm(aligned - first, axis=-1).mean(-1)


def blink_frames(take: np.ndarray, closed_fraction: float = DEFAULT_CLOSED_FRACTION) -> np.ndarray:
    """bool [T]: frames whose eye opening is below closed_fraction of the take's median (the
    median, not frame 0, so that a take starting mid-blink is still read right)."""
    opening = eye_opening(take)
    reference = np.nanmedian(opening) if np.isfinite(opening).any() else np.nan
    with np.errstate(invalid="ignore"):
        return opening < closed_fraction * reference


def apex_frames(
    take: np.ndarray, count: int, closed_fraction: float = DEFAULT_CLOSED_FRACTION
) -> np.ndarray:
    """int [≤count]: the frames (frame 0 excluded) farthest in expression from frame 0
    (expression_distance), blinks excluded; in time order. Fewer when the take is short."""
    distance = expression_distance(take)
    usable = np.isfinite(distance) & ~blink_frames(take, closed_fraction)
    usable[0] = False
    candidates = np.flatnonzero(usable)
    farthest = candidates[np.argsort(-distance[candidates], kind="stable")[:count]]
    return np.sort(farthest)


def amplitude_ratio(generated: np.ndarray, truth: np.ndarray) -> float | None:
    """How much of the true change the generated change reaches: the least-squares slope
    through the origin, sum(g·t) / sum(t²), over the pairs where both are finite (1: the
    full change, 0: none, negative: the wrong way). None when the truth does not change."""
    generated, truth = np.asarray(generated, np.float64), np.asarray(truth, np.float64)
    finite = np.isfinite(generated) & np.isfinite(truth)
    energy = float((truth[finite] ** 2).sum())
    if energy == 0:
        return None
    return float((generated[finite] * truth[finite]).sum() / energy)
