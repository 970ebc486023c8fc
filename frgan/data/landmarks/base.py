"""The landmark-source interface and the factory that builds a source by name.

A landmark source turns the frames of one take into landmarks per frame, 68 or (for
structure_mesh="mesh468", which ground_truth and mediapipe can give) 468 points:

    source(frames, take_dir, frame_ids=None) -> float32 [T, 68 or 468, 3]

- frames: uint8 RGB [T, H, W, 3], the take's frames in order (after the pipeline dropped any).
- take_dir: the take's folder (only `ground_truth` reads from it).
- frame_ids: for each frame, its number in the take (e.g. 7 for img_0007.jpg); sources that
  read stored per-frame data use it, detectors ignore it. None means 0, 1, ..., T-1.
- result: the frames' pixel coordinates (x right, y down, z depth in the same units with
  SMALLER z NEARER the camera); frames where no face was found are rows of NaN.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

NUM_LANDMARKS = 68

# name -> "module:class", imported only when asked for, so that using one backend never
# requires the packages of the others.
_SOURCES = {
    "ground_truth": "frgan.data.landmarks.ground_truth:GroundTruthLandmarks",
    "face_alignment": "frgan.data.landmarks.face_alignment_source:FaceAlignmentLandmarks",
    "mediapipe": "frgan.data.landmarks.mediapipe_source:MediaPipeLandmarks",
}
SOURCE_NAMES = tuple(_SOURCES)


@runtime_checkable
class LandmarkSource(Protocol):
    name: str

    def __call__(
        self, frames: np.ndarray, take_dir: Path, frame_ids: Sequence[int] | None = None
    ) -> np.ndarray: ...


def build_landmark_source(name: str, **kwargs) -> LandmarkSource:
    """Build the landmark source called `name` (one of SOURCE_NAMES) with its keyword options
    (every source takes structure_mesh="face68" | "mesh468")."""
    if name not in _SOURCES:
        raise ValueError(
            f"unknown landmark source {name!r}; choose one of {', '.join(SOURCE_NAMES)}"
        )
    module_name, class_name = _SOURCES[name].split(":")
    source_class = getattr(importlib.import_module(module_name), class_name)
    return source_class(**kwargs)


def detect_faces(
    source: LandmarkSource,
    frames: np.ndarray,
    take_dir: Path | None,
    frame_ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks [T, P, 3] of the main face, how many faces each frame shows, int [T]).

    Detectors count the faces they see (`detect`); a source that cannot count (ground truth)
    reports one face wherever it has landmarks."""
    detect = getattr(source, "detect", None)
    if detect is not None:
        return detect(frames, take_dir, frame_ids)
    landmarks = source(frames, take_dir, frame_ids)
    return landmarks, (~np.isnan(landmarks).any(axis=(1, 2))).astype(np.int64)


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Return `frames` if it is a uint8 RGB stack [T, H, W, 3] with T >= 1, else raise ValueError."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(
            f"frames must be uint8 RGB [T, H, W, 3] with T >= 1, got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    return frames


def empty_landmarks(num_frames: int, num_points: int = NUM_LANDMARKS) -> np.ndarray:
    """All-NaN landmarks [num_frames, num_points, 3]: the 'no face found' value of every frame."""
    return np.full((num_frames, num_points, 3), np.nan, dtype=np.float32)
