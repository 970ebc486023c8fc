"""Landmark sources: 68 (or 468, mesh468) landmarks per frame from stored ground truth or a face detector."""

from frgan.data.landmarks.base import (
    NUM_LANDMARKS,
    SOURCE_NAMES,
    LandmarkSource,
    build_landmark_source,
    detect_faces,
    empty_landmarks,
)

__all__ = [
    "NUM_LANDMARKS",
    "SOURCE_NAMES",
    "LandmarkSource",
    "build_landmark_source",
    "detect_faces",
    "empty_landmarks",
]
