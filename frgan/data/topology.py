"""The structure meshes a dataset can use (data.structure_mesh) and what each needs.

- face68: the 68 iBUG landmarks and FACE68_TRIANGLES (every landmark source gives them).
- mesh468: MediaPipe Face Mesh's 468 points and MESH468_TRIANGLES (mediapipe, or the
  synthetic generator's ground truth in that topology; face_alignment gives 68 only).

A take's landmarks [T, N, 3] tell their mesh by N. Crop boxes are placed from the 68-point
subset (MEDIAPIPE_TO_68 for mesh468), so both meshes crop a face the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frgan.data.landmarks.mediapipe_68 import MEDIAPIPE_TO_68
from frgan.render.face68 import FACE68_MEAN, FACE68_TRIANGLES
from frgan.render.mesh468 import MESH468_ANCHORS, MESH468_MEAN, MESH468_TRIANGLES

# Points that expressions hardly move: the upper jaw line (0-2, 14-16), the nose (27-35) and
# the eye corners (36, 39, 42, 45). Brows, lids, mouth and chin are left out on purpose.
FACE68_ANCHORS = np.array([0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])


@dataclass(frozen=True)
class StructureMesh:
    name: str
    triangles: np.ndarray  # int32 [M,3], counter-clockwise on screen on the mean face
    mean: np.ndarray  # float32 [N,3] frontal template (normalised units)
    anchors: np.ndarray  # int64 [K] points expressions hardly move
    to_face68: np.ndarray | None  # int64 [68] the 68-point subset (None: it is face68)
    sources: tuple[str, ...]  # landmark sources (data.prepare.landmarks) that give these points

    @property
    def num_points(self) -> int:
        return len(self.mean)

    def face68(self, landmarks: np.ndarray) -> np.ndarray:
        """The 68-point subset [..., 68, D] of landmarks [..., N, D] of this mesh."""
        return landmarks if self.to_face68 is None else landmarks[..., self.to_face68, :]


STRUCTURE_MESHES = {
    "face68": StructureMesh(
        "face68",
        FACE68_TRIANGLES,
        FACE68_MEAN,
        FACE68_ANCHORS,
        None,
        ("ground_truth", "face_alignment", "mediapipe"),
    ),
    "mesh468": StructureMesh(
        "mesh468",
        MESH468_TRIANGLES,
        MESH468_MEAN,
        MESH468_ANCHORS,
        MEDIAPIPE_TO_68,
        ("ground_truth", "mediapipe"),
    ),
}
MESH_NAMES = tuple(STRUCTURE_MESHES)


def structure_mesh(name: str) -> StructureMesh:
    """The mesh called `name` (data.structure_mesh); ValueError naming the choices otherwise."""
    if name not in STRUCTURE_MESHES:
        raise ValueError(
            f"data.structure_mesh={name!r} is not a structure mesh; choose one of "
            f"{', '.join(MESH_NAMES)}"
        )
    return STRUCTURE_MESHES[name]


def mesh_of(landmarks: np.ndarray) -> StructureMesh:
    """The mesh of landmarks [..., N, D] from their point count N."""
    count = np.shape(landmarks)[-2] if np.ndim(landmarks) >= 2 else None
    for mesh in STRUCTURE_MESHES.values():
        if mesh.num_points == count:
            return mesh
    known = ", ".join(f"{m.name} ({m.num_points})" for m in STRUCTURE_MESHES.values())
    raise ValueError(
        f"landmarks of shape {np.shape(landmarks)} have {count} points; a structure mesh has "
        f"one of: {known}"
    )


def check_source(mesh_name: str, source: str) -> None:
    """Refuse a landmark source that cannot give the mesh's points (ConfigError, exit 2)."""
    from frgan.errors import ConfigError

    mesh = structure_mesh(mesh_name)
    if source in mesh.sources:
        return
    able = [name for name, m in STRUCTURE_MESHES.items() if source in m.sources]
    counts = " or ".join(str(STRUCTURE_MESHES[name].num_points) for name in able)
    raise ConfigError(
        f"data.prepare.landmarks={source} gives {counts or 'no'} points only, but "
        f"data.structure_mesh={mesh_name} needs {mesh.num_points}; use "
        f"data.prepare.landmarks={' or '.join(s for s in mesh.sources)} with {mesh_name}, or "
        f"data.structure_mesh={able[0] if able else 'face68'}"
    )
