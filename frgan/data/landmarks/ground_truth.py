"""Landmarks read from the synthetic generator's <take_dir>/ground_truth.npz (key `landmarks`)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frgan.data.errors import GroundTruthError
from frgan.data.landmarks.base import NUM_LANDMARKS, check_frames

GROUND_TRUTH_FILE = "ground_truth.npz"


class GroundTruthLandmarks:
    """Ground-truth landmarks of synthetic takes; row k of the file belongs to frame number k."""

    name = "ground_truth"

    def __call__(
        self, frames: np.ndarray, take_dir: Path, frame_ids: Sequence[int] | None = None
    ) -> np.ndarray:
        num_frames = check_frames(frames).shape[0]
        stored = load_ground_truth_landmarks(Path(take_dir))
        if frame_ids is None:
            if len(stored) != num_frames:
                raise GroundTruthError(
                    f"{Path(take_dir) / GROUND_TRUTH_FILE} holds landmarks for {len(stored)} frames "
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
                f"{Path(take_dir) / GROUND_TRUTH_FILE} has rows 0..{len(stored) - 1}, "
                f"but frame_ids asks for {out_of_range.tolist()}"
            )
        return stored[frame_ids]


def load_ground_truth_landmarks(take_dir: Path) -> np.ndarray:
    """The `landmarks` array [T, 68, 3] float32 of take_dir/ground_truth.npz, checked."""
    path = take_dir / GROUND_TRUTH_FILE
    if not path.is_file():
        raise GroundTruthError(
            f"{path} not found: the ground_truth landmark source needs the synthetic generator's "
            "ground-truth file in every take (use landmarks=face_alignment or mediapipe for real videos)"
        )
    try:
        with np.load(path) as archive:
            if "landmarks" not in archive.files:
                raise GroundTruthError(
                    f"{path} has no `landmarks` array (it holds {sorted(archive.files)})"
                )
            landmarks = archive["landmarks"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise GroundTruthError(f"{path} cannot be read ({error}); regenerate the take") from error
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 3):
        raise GroundTruthError(f"{path}: `landmarks` must be [T, 68, 3], got {landmarks.shape}")
    return landmarks.astype(np.float32, copy=False)
