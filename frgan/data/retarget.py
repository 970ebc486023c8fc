"""Expression retargeting between faces given as landmark sets (pure NumPy).

A driver take [T, P, 3] (P = 68 or 468 points, see frgan/data/topology.py) is split into pose and expression: each frame is aligned to the
driver's first frame by a similarity transform (rotation, uniform scale, translation)
estimated on points that expressions barely move (ANCHORS), and its expression is the
displacement of the aligned frame from the first frame. The displacement is carried to the
target face by the similarity that maps the driver's first frame onto the target (which scales
it by the ratio of the face sizes and turns it into the target's pose) and added to the
target's landmarks. Works for 2D or 3D points; frames with NaN stay NaN.
"""

from __future__ import annotations

import numpy as np

from frgan.data.topology import FACE68_ANCHORS, mesh_of

ANCHORS = FACE68_ANCHORS  # the 68-point anchors; `None` below picks the landmarks' mesh's own


def similarity_transform(
    source: np.ndarray, target: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991) with target ≈ scale * source @ rotation.T + translation.

    source, target: matching points [N, D] (D = 2 or 3). Returns (scale, rotation [D, D], a proper
    rotation, no reflection, translation [D]).
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] not in (2, 3):
        raise ValueError(
            f"need two matching point sets [N, 2 or 3], got {source.shape} and {target.shape}"
        )
    if not (np.isfinite(source).all() and np.isfinite(target).all()):
        raise ValueError("cannot align point sets that contain NaN")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    source_variance = (source_centred**2).sum() / len(source)
    if source_variance == 0:
        raise ValueError("cannot align a point set whose points all coincide")
    covariance = target_centred.T @ source_centred / len(source)
    u, singular_values, vt = np.linalg.svd(covariance)
    signs = np.ones(source.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best orthogonal map is a reflection
        signs[-1] = -1.0
    rotation = u @ np.diag(signs) @ vt
    scale = float((singular_values * signs).sum() / source_variance)
    translation = target_mean - scale * rotation @ source_mean
    return scale, rotation, translation


def apply_similarity(
    points: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    """scale * points @ rotation.T + translation, for points [..., D]."""
    return scale * np.asarray(points, dtype=np.float64) @ rotation.T + translation


def align(source: np.ndarray, target: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
    """`source` [N, D] moved onto `target` by the similarity fitted on the anchor points (all if None)."""
    picked = slice(None) if anchors is None else anchors
    return apply_similarity(source, *similarity_transform(source[picked], target[picked]))


def expression_displacement(driver: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
    """Displacement [T, N, D] of each driver frame, aligned to the first frame, from the first frame.

    Expressed in the first frame's coordinates; frame 0's displacement is zero. Frames with NaN
    give NaN. anchors=None: those of the landmarks' mesh (68 or 468 points).
    """
    driver = _check_take(driver, "driver")
    anchors = mesh_of(driver).anchors if anchors is None else anchors
    return _split_pose_and_expression(driver, anchors)[1]


def retarget(
    driver: np.ndarray,
    target_neutral: np.ndarray,
    *,
    anchors: np.ndarray | None = None,
    transfer_head_motion: bool = False,
) -> np.ndarray:
    """Drive `target_neutral` [N, D] with the expression of `driver` [T, N, D] -> float32 [T, N, D].

    Frame t of the result is the target's landmarks plus the driver's displacement at t, carried
    over by the similarity mapping the driver's first frame onto the target: scaled by the ratio
    of the face sizes and turned into the target's pose. The result keeps the target's head pose;
    transfer_head_motion=True also applies the driver's head motion relative to its first frame
    (then a face driven by its own take reproduces the take exactly). The driver's own size,
    position and orientation do not matter. Frames where the driver has NaN are NaN.
    anchors=None: those of the landmarks' mesh (68 or 468 points).
    """
    driver = _check_take(driver, "driver")
    anchors = mesh_of(driver).anchors if anchors is None else anchors
    target_neutral = np.asarray(target_neutral, dtype=np.float64)
    if target_neutral.shape != driver.shape[1:] or not np.isfinite(target_neutral).all():
        raise ValueError(
            f"target_neutral must be finite landmarks shaped like one driver frame {driver.shape[1:]}, "
            f"got shape {target_neutral.shape}"
        )
    to_target = similarity_transform(driver[0][anchors], target_neutral[anchors])
    scale, rotation, _ = to_target
    to_first, displacement = _split_pose_and_expression(driver, anchors)
    result = target_neutral + scale * displacement @ rotation.T
    if transfer_head_motion:
        for index, pose in enumerate(to_first):
            if pose is not None:
                # Undo the alignment to the first frame (the driver's head motion), in the target's coordinates.
                in_driver = _invert_apply(result[index], *to_target)
                result[index] = apply_similarity(_invert_apply(in_driver, *pose), *to_target)
    return result.astype(np.float32)


def _split_pose_and_expression(driver: np.ndarray, anchors: np.ndarray):
    """Per frame, the similarity aligning it to the first frame (None where NaN), and the displacement."""
    first = driver[0]
    to_first = []
    displacement = np.full(driver.shape, np.nan)
    for index, frame in enumerate(driver):
        if not np.isfinite(frame).all():
            to_first.append(None)
            continue
        pose = similarity_transform(frame[anchors], first[anchors])
        to_first.append(pose)
        displacement[index] = apply_similarity(frame, *pose) - first
    return to_first, displacement


def _invert_apply(
    points: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    return (points - translation) @ rotation / scale


def _check_take(landmarks: np.ndarray, what: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[0] == 0 or landmarks.shape[2] not in (2, 3):
        raise ValueError(
            f"{what} must be landmarks [T, N, 2 or 3] with T >= 1, got shape {landmarks.shape}"
        )
    if not np.isfinite(landmarks[0]).all():
        raise ValueError(
            f"the {what}'s first frame has NaN landmarks: it is the reference, so it needs a face"
        )
    return landmarks
