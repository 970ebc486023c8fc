"""Faces of generate's inputs: landmarks from the preparation's sources, crops as preparation
makes them (frgan.data.crop: the paper's box from the first frame, resized to the model's size).

Landmark source "auto": a take's ground_truth.npz when the image or frame folder has one (the
synthetic set), else face-alignment's 3D model when its weights are in place, else MediaPipe
(offline, from its wheel). A mesh468 model needs 468 points: face-alignment is never chosen.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frgan.data.crop import crop_boxes, crop_frames, landmarks_to_crop
from frgan.data.errors import LandmarkSourceUnavailable, NoFaceFound
from frgan.data.landmarks import SOURCE_NAMES, build_landmark_source
from frgan.data.landmarks.ground_truth import GROUND_TRUTH_FILE
from frgan.data.topology import check_source
from frgan.inference.frames import DriverFrames

LANDMARK_CHOICES = ("auto", *SOURCE_NAMES)


@dataclass
class Face:
    """A face cropped for the model: crop uint8 [S,S,3], its landmarks [P,3] in crop pixels and
    the crop's box (cx, cy, side) float64 [3] in the photo's pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    landmark_source: str
    box: np.ndarray


@dataclass
class DriverTake:
    """A driver cropped by its first-frame box: frames uint8 [T,S,S,3], landmarks [T,P,3]."""

    frames: np.ndarray
    landmarks: np.ndarray
    landmark_source: str
    frames_without_face: int  # given the landmarks of the frame before (or the first with a face)


def face_alignment_ready() -> bool:
    """Whether face-alignment and its three weight files are present (nothing is downloaded)."""
    from frgan.data.landmarks.face_alignment_source import check_weights

    try:
        check_weights()
    except LandmarkSourceUnavailable:
        return False
    return True


def choose_landmark_source(name: str, folder: Path | None, mesh: str = "face68") -> str:
    """The landmark source to use: `name`, or for "auto" ground truth when `folder` (where the
    frames come from, None for a video) holds ground_truth.npz, else face-alignment when its
    weights are present, else MediaPipe."""
    if name not in LANDMARK_CHOICES:
        raise ValueError(
            f"landmarks={name!r} is unknown; choose one of {', '.join(LANDMARK_CHOICES)}"
        )
    if name != "auto":
        check_source(mesh, name)
        return name
    if folder is not None and (folder / GROUND_TRUTH_FILE).is_file():
        return "ground_truth"
    if mesh != "face68":
        return "mediapipe"
    return "face_alignment" if face_alignment_ready() else "mediapipe"


@contextlib.contextmanager
def quiet_native_output(enabled: bool = True) -> Iterator[None]:
    """Silence what native code writes to stderr meanwhile (MediaPipe prints a harmless
    protobuf AttributeError on import and absl start-up logs: misleading to a user)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(io.StringIO()):
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def find_landmarks(name: str, frames: np.ndarray, folder, frame_ids, **options) -> np.ndarray:
    """Landmarks [T,P,3] of `frames` from the source called `name` (NaN rows: no face)."""
    with quiet_native_output(name == "mediapipe"):
        return build_landmark_source(name, **options)(frames, folder, frame_ids=frame_ids)


def source_face(
    image: np.ndarray, path: Path, size: int, landmarks: str = "auto", mesh: str = "face68"
) -> Face:
    """The face of a source photo [H,W,3] cropped to [size, size] with its 3D landmarks
    (68, or 468 for mesh="mesh468")."""
    frame_number = _frame_number(path)
    folder = path.parent if frame_number is not None else None
    name = choose_landmark_source(landmarks, folder, mesh)
    if name == "ground_truth" and frame_number is None:
        raise ValueError(
            f"landmarks=ground_truth needs the source to be a frame of a take (img_NNNN.jpg "
            f"beside ground_truth.npz), got {path}; use landmarks=auto for a photo"
        )
    options = {"static_image_mode": True} if name == "mediapipe" else {}
    options["structure_mesh"] = mesh
    frame_ids = None if frame_number is None else [frame_number]
    found = find_landmarks(name, image[None], path.parent, frame_ids, **options)
    if not np.isfinite(found).all():
        raise NoFaceFound(
            f"no face found in the source image {path} (landmark source {name}); give a photo "
            "with one clearly visible, roughly frontal face"
        )
    boxes = crop_boxes(found)
    crop = crop_frames(image[None], boxes, size)[0]
    return Face(crop, landmarks_to_crop(found, boxes, size)[0], name, boxes[0])


def driver_take(
    driver: DriverFrames, size: int, what: str, landmarks: str = "auto", mesh: str = "face68"
) -> DriverTake:
    """The driver's landmarks per frame and its frames cropped by the box of its first frame
    with a face; frames without a face keep the landmarks of the frame before."""
    folder = driver.folder if driver.frame_ids is not None else None
    name = choose_landmark_source(landmarks, folder, mesh)
    if name == "ground_truth" and folder is None:
        raise ValueError(
            f"landmarks=ground_truth needs the driver to be a take folder with ground_truth.npz "
            f"and numbered frames, got {what}; use landmarks=auto"
        )
    found = find_landmarks(name, driver.frames, folder, driver.frame_ids, structure_mesh=mesh)
    has_face = np.isfinite(found).all(axis=(1, 2))
    if not has_face.any():
        raise NoFaceFound(
            f"no face found in any frame of the driver {what} (landmark source {name}); give a "
            "video or frames showing one face"
        )
    # the frame before with a face, or the first one with a face for leading frames
    previous = np.maximum.accumulate(np.where(has_face, np.arange(len(found)), -1))
    filled = found[np.where(previous >= 0, previous, np.flatnonzero(has_face)[0])]
    boxes = crop_boxes(filled)
    frames = crop_frames(driver.frames, boxes, size)
    return DriverTake(frames, landmarks_to_crop(filled, boxes, size), name, int((~has_face).sum()))


def _frame_number(path: Path) -> int | None:
    """The frame number of a take's frame file (img_0007.jpg -> 7), None for other names."""
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None
