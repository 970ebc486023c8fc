"""68 3D landmarks from face-alignment (S3FD face detector + 3D-FAN + its depth network).

face-alignment downloads its weights on first use; offline that fails deep inside with a
URLError. This source looks for the files first and, when any is missing, raises
LandmarkSourceUnavailable naming each file and the folder to put it in, before doing any work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from frgan.data.errors import LandmarkSourceUnavailable
from frgan.data.landmarks.base import check_frames, empty_landmarks
from frgan.data.topology import check_source


def _import_face_alignment():
    try:
        import face_alignment
        import face_alignment.api
        import face_alignment.detection.sfd.sfd_detector
    except ImportError as error:
        raise LandmarkSourceUnavailable(
            f"the face_alignment landmark source needs the face-alignment package ({error}); "
            "install it with: pip install 'face-alignment>=1.4,<1.6' (or the project's [faces] extra)"
        ) from error
    return face_alignment


def weight_urls() -> dict[str, str]:
    """The download URLs of the three weight files the 3D model needs, from the package itself."""
    face_alignment = _import_face_alignment()
    fan_urls = face_alignment.api.models_urls
    return {
        "face detector (S3FD)": face_alignment.detection.sfd.sfd_detector.models_urls["s3fd"],
        "3D landmark network (3DFAN-4)": fan_urls["3DFAN-4"],
        "depth network": fan_urls["depth"],
    }


def checkpoint_dir() -> Path:
    """Where torch.hub (and so face-alignment) looks for weights: $TORCH_HOME/hub/checkpoints."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_paths() -> dict[str, Path]:
    folder = checkpoint_dir()
    return {
        role: folder / os.path.basename(urlparse(url).path) for role, url in weight_urls().items()
    }


def check_weights() -> None:
    """Raise LandmarkSourceUnavailable listing every missing weight file and where it belongs."""
    missing = {role: path for role, path in weight_paths().items() if not path.is_file()}
    if not missing:
        return
    urls = weight_urls()
    folder = checkpoint_dir()
    lines = [f"  {path.name}  ({role}; from {urls[role]})" for role, path in missing.items()]
    torch_home = os.environ.get("TORCH_HOME", "unset")
    raise LandmarkSourceUnavailable(
        "the face_alignment landmark source needs face-alignment's weight files (this project never "
        f"downloads weights). Missing from {folder} ($TORCH_HOME/hub/checkpoints/, TORCH_HOME={torch_home}):\n"
        + "\n".join(lines)
        + f"\nDownload them on a connected machine and copy them into {folder}/ under exactly these names."
    )


class FaceAlignmentLandmarks:
    """face-alignment 1.5's 3D model (LandmarksType.THREE_D) on every frame.

    The detector runs on every frame; when it finds several faces the largest box is used.
    FAN's depth follows its training data (300W-LP, Basel face model: z grows towards the
    camera), so z is negated to meet the project's "smaller z nearer" convention. Landmark
    x, y are the package's image coordinates (it quantises them to about a pixel).
    """

    name = "face_alignment"

    def __init__(
        self,
        *,
        device: str = "cpu",
        flip_input: bool = True,
        detector_threshold: float = 0.5,
        structure_mesh: str = "face68",
    ):
        check_source(structure_mesh, self.name)
        face_alignment = _import_face_alignment()
        check_weights()
        self._model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.THREE_D,
            device=device,
            flip_input=flip_input,
            face_detector="sfd",
            face_detector_kwargs={"filter_threshold": detector_threshold},
            compile=False,
        )

    def __call__(
        self,
        frames: np.ndarray,
        take_dir: Path | None = None,
        frame_ids: Sequence[int] | None = None,
    ) -> np.ndarray:
        return self.detect(frames)[0]

    def detect(
        self,
        frames: np.ndarray,
        take_dir: Path | None = None,
        frame_ids: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks of the largest face, faces the detector found per frame, int [T])."""
        frames = check_frames(frames)
        landmarks = empty_landmarks(len(frames))
        counts = np.zeros(len(frames), np.int64)
        for index, frame in enumerate(frames):
            boxes = self._model.face_detector.detect_from_image(frame.copy())
            counts[index] = len(boxes)
            if len(boxes) == 0:
                continue
            largest = max(boxes, key=lambda box: (box[2] - box[0]) * (box[3] - box[1]))
            found = self._model.get_landmarks_from_image(frame, detected_faces=[largest])
            landmarks[index] = found[0]
        landmarks[..., 2] *= -1
        return landmarks, counts
