"""Landmarks read from the synthetic generator's <take_dir>/ground_truth.npz.

Key `landmarks` holds the 68 points, `landmarks_468` the 468 MediaPipe-topology points
(structure_mesh="mesh468"; written by the synthetic generator from version 1.1 on)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frgan.data.errors import GroundTruthError
from frgan.data.landmarks.base import check_frames
from frgan.data.topology import structure_mesh as find_mesh

GROUND_TRUTH_FILE = "ground_truth.npz"


class GroundTruthLandmarks:
    """Ground-truth landmarks of synthetic takes; row k of the file belongs to frame number k.

    `take_dir` is the take's folder (its ground_truth.npz is read) or the .npz file itself
    (a synthetic video's clip.ground_truth.npz beside clip.mp4)."""

    name = "ground_truth"

    def __init__(self, *, structure_mesh: str = "face68"):
        self.mesh = find_mesh(structure_mesh)

    def __call__(
        self, frames: np.ndarray, take_dir: Path, frame_ids: Sequence[int] | None = None
    ) -> np.ndarray:
        num_frames = check_frames(frames).shape[0]
        path = Path(take_dir)
        path = path if path.is_file() else path / GROUND_TRUTH_FILE
        stored = load_ground_truth_file(path, self.mesh.num_points)
        if frame_ids is None:
            if len(stored) != num_frames:
                raise GroundTruthError(
                    f"{path} holds landmarks for {len(stored)} frames "
                    f"but the take has {num_frames}; pass frame_ids to say which rows belong to the frames"
                )
            return stored
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        if frame_ids.shape != (num_frames,):
            raise ValueError(
                f"frame_ids must give one number per frame ({num_frames}), got shape {frame_ids.shape}"
            )
        out_of_range = frame_ids[(frame_ids < 0) | (frame_ids >= len(stored))]
        if out_of_range.size:
            raise GroundTruthError(
                f"{path} has rows 0..{len(stored) - 1}, "
                f"but frame_ids asks for {out_of_range.tolist()}"
            )
        return stored[frame_ids]


def ground_truth_key(num_points: int) -> str:
    return "landmarks" if num_points == 68 else f"landmarks_{num_points}"


def load_ground_truth_landmarks(take_dir: Path, num_points: int = 68) -> np.ndarray:
    """The landmarks [T, num_points, 3] float32 of take_dir/ground_truth.npz, checked."""
    return load_ground_truth_file(take_dir / GROUND_TRUTH_FILE, num_points)


def load_ground_truth_file(path: Path, num_points: int = 68) -> np.ndarray:
    """The landmarks [T, num_points, 3] float32 of a ground-truth .npz file, checked."""
    key = ground_truth_key(num_points)
    if not path.is_file():
        raise GroundTruthError(
            f"{path} not found: the ground_truth landmark source needs the synthetic generator's "
            "ground-truth file in every take (use landmarks=face_alignment or mediapipe for real videos)"
        )
    try:
        with np.load(path) as archive:
            if key not in archive.files:
                hint = (
                    "; it was written by an older synthetic generator: regenerate the raw set "
                    "(delete data.raw_dir, or frgan.synth overwrite=true) for 468-point ground "
                    "truth, or use data.prepare.landmarks=mediapipe"
                    if num_points != 68
                    else ""
                )
                raise GroundTruthError(
                    f"{path} has no `{key}` array (it holds {sorted(archive.files)}){hint}"
                )
            landmarks = archive[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise GroundTruthError(f"{path} cannot be read ({error}); regenerate the take") from error
    if landmarks.ndim != 3 or landmarks.shape[1:] != (num_points, 3):
        raise GroundTruthError(
            f"{path}: `{key}` must be [T, {num_points}, 3], got {landmarks.shape}"
        )
    return landmarks.astype(np.float32, copy=False)
