"""Structure maps rendered from landmarks with the project's renderer.

The landmarks' mesh (data.structure_mesh: face68 or mesh468, frgan/data/topology.py) gives the
triangles, the frontal template and the anchor points.

Kinds (data.structure):
- normal: normal map whose normals are taken in model space, i.e. from the landmarks with the
  head rotation removed (aligned to a frontal template), so they do not turn with the head —
  as in the paper. Positions stay where the face is.
- normal_camera: normals of the landmarks as they are (they turn with the head).
- depth: the face's depth, scaled per frame to [-1, 1] (near = 1), in all 3 channels.
- normal_parts_teeth: normal_parts with the teeth the mouth cavity shows (frgan/render/parts.py)
- normal_parts: the normal map with the mouth cavity, lips, eye openings and brows drawn over
  it in colours no normal takes (frgan/render/parts.py), so expression shows distinctly.
All are float32 [N, 3, H, W] with background exactly 0.
"""

from __future__ import annotations

import numpy as np
from einops import rearrange, repeat

from frgan.data.topology import FACE68_ANCHORS, structure_mesh
from frgan.render import normal_maps, rasterize
from frgan.render.parts import draw_parts

STRUCTURE_KINDS = ("normal", "normal_camera", "depth", "normal_parts", "normal_parts_teeth")


def remove_head_rotation(
    landmarks: np.ndarray, template: np.ndarray, anchors: np.ndarray = FACE68_ANCHORS
) -> np.ndarray:
    """Each frame [N,P,3] rotated so that its stable points (anchors) best match the template.

    The rotation of retarget.similarity_transform (Umeyama), batched over frames: one
    stacked SVD instead of a Python loop keeps this well under the rendering time.
    """
    source = landmarks[:, anchors] - landmarks[:, anchors].mean(axis=1, keepdims=True)
    target = template[anchors] - template[anchors].mean(axis=0)
    u, _, vt = np.linalg.svd(np.einsum("ki,nkj->nij", target, source))
    u[:, :, -1] *= np.sign(np.linalg.det(u) * np.linalg.det(vt))[:, None]  # no reflections
    rotation = u @ vt
    return np.einsum("nkj,nij->nki", landmarks, rotation).astype(np.float32)


def depth_maps(landmarks: np.ndarray, size: int, triangles: np.ndarray) -> np.ndarray:
    """[N,H,W] depth of the face scaled per frame to [-1, 1], nearer is larger; background 0."""
    _, _, depth = rasterize(landmarks, triangles, size, size)
    covered = np.isfinite(depth)
    near = np.where(covered, depth, np.inf).min(axis=(1, 2), keepdims=True)
    far = np.where(covered, depth, -np.inf).max(axis=(1, 2), keepdims=True)
    scaled = 1.0 - 2.0 * (depth - near) / np.maximum(far - near, 1e-6)
    return np.where(covered, scaled, 0.0).astype(np.float32)


class StructureRenderer:
    """Callable: landmarks [N,P,3] in crop pixels -> structure maps float32 [N,3,size,size].

    `mesh`: face68 (P=68) or mesh468 (P=468). `template`: the frontal face [P,3] that
    model-space normals are aligned to (default the mesh's mean face)."""

    def __init__(
        self,
        kind: str = "normal",
        image_size: int = 64,
        template: np.ndarray | None = None,
        mesh: str = "face68",
    ):
        if kind not in STRUCTURE_KINDS:
            raise ValueError(f"Unknown structure '{kind}'; choose one of {STRUCTURE_KINDS}.")
        self.kind, self.image_size = kind, int(image_size)
        self.mesh = structure_mesh(mesh)
        self.template = template

    channels = 3

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        landmarks = np.ascontiguousarray(landmarks, dtype=np.float32)
        if landmarks.ndim != 3 or landmarks.shape[1:] != (self.mesh.num_points, 3):
            raise ValueError(
                f"the {self.mesh.name} structure renderer needs landmarks "
                f"[N, {self.mesh.num_points}, 3], got {landmarks.shape}; data.structure_mesh must "
                "match the landmarks in the shards (prepare them again with this mesh)"
            )
        size, triangles = self.image_size, self.mesh.triangles
        if self.kind == "depth":
            return np.ascontiguousarray(
                repeat(depth_maps(landmarks, size, triangles), "n h w -> n c h w", c=3)
            )
        normal_vertices = None
        if self.kind in ("normal", "normal_parts", "normal_parts_teeth"):
            normal_vertices = remove_head_rotation(
                landmarks, self._frontal_template(), self.mesh.anchors
            )
        maps = normal_maps(landmarks, triangles, size, size, normal_vertices=normal_vertices)
        maps = rearrange(maps, "n h w c -> n c h w")
        if self.kind.startswith("normal_parts"):
            teeth = self.kind == "normal_parts_teeth"
            maps = draw_parts(maps, self.mesh.face68(landmarks), teeth=teeth)
        return np.ascontiguousarray(maps)

    def _frontal_template(self) -> np.ndarray:
        return self.mesh.mean if self.template is None else self.template
