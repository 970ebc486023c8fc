"""Triangle rasterization with a depth test, and attribute lookup from its output.

Conventions (the team contract):
- Orthographic: x, y are image pixel coordinates (x right, y down); z is depth in the
  same units, SMALLER z is NEARER. Barycentrics are therefore plain 2D barycentrics.
- Pixel (row i, column j) is sampled at its centre (x = j + 0.5, y = i + 0.5).
- A pixel centre is covered when it is strictly inside a triangle; a centre exactly on
  an edge belongs to the triangle for which that edge is a top or left edge (D3D/GL
  rule), so two triangles sharing an edge never both cover nor both miss it.
- The nearest triangle wins, by depth interpolated at the pixel centre; on an exact
  depth tie the earlier face (lower index) wins.
- Both windings are drawn (no back-face culling). Zero-area triangles are skipped;
  triangles partly outside the image are clipped to it.
"""

import numpy as np

from frgan.render import _raster
from frgan.render._checks import as_faces, as_size, as_vertices


def rasterize(vertices, faces, height: int, width: int):
    """Rasterize a mesh (one frame [N,3] or a clip [T,N,3]) in one call.

    Args:
        vertices: float32/float64 [N,3] or [T,N,3] (x, y in pixels, z depth).
        faces: int32/int64 [M,3] vertex indices (converted to int32).
        height, width: image size in pixels.

    Returns:
        face_index: int32 [H,W] (or [T,H,W]), index into faces of the visible triangle, -1
            for background.
        bary: float32 [H,W,3] barycentric weights of that triangle's three corners (sum 1;
            0 for background).
        depth: float32 [H,W] interpolated depth of the visible surface, +inf for background.
    """
    batched = np.ndim(vertices) == 3
    vertex_frames = as_vertices(vertices)
    face_array = as_faces(faces, vertex_frames.shape[1])
    height, width = as_size(height, "height"), as_size(width, "width")
    frames = vertex_frames.shape[0]
    face_index = np.empty((frames, height, width), dtype=np.int32)
    bary = np.empty((frames, height, width, 3), dtype=np.float32)
    depth = np.empty((frames, height, width), dtype=np.float32)
    _raster.rasterize_frames(vertex_frames, face_array, face_index, bary, depth)
    if batched:
        return face_index, bary, depth
    return face_index[0], bary[0], depth[0]


def interpolate(attributes, faces, face_index, bary) -> np.ndarray:
    """Interpolate per-vertex attributes over the image with barycentric weights.

    Args:
        attributes: [N,C] per-vertex values (e.g. colours, normals), or [T,N,C] per frame.
        faces: [M,3] the faces that were rasterized.
        face_index, bary: from `rasterize` ([H,W] and [H,W,3], or [T,H,W] and [T,H,W,3]).

    Returns:
        float32 [H,W,C] (or [T,H,W,C]); background pixels are 0.
    """
    values = _as_values(attributes, "attributes")
    face_array = as_faces(faces, values.shape[-2])
    face_index = _as_face_index(face_index, len(face_array), values)
    bary = _as_bary(bary, face_index)
    out = np.zeros(face_index.shape + (values.shape[-1],), dtype=np.float32)
    covered = face_index >= 0
    corners = face_array[face_index[covered]]  # [K,3] vertex ids per covered pixel
    if values.ndim == 3:
        frame = np.nonzero(covered)[0]
        corner_values = values[frame[:, None], corners]  # [K,3,C]
    else:
        corner_values = values[corners]
    out[covered] = np.einsum("kv,kvc->kc", bary[covered], corner_values)
    return out


def gather_face_attributes(face_attributes, face_index) -> np.ndarray:
    """Flat shading: the attribute of the visible face at every pixel.

    Args:
        face_attributes: [M,C] one value per face (e.g. face normals), or [T,M,C] per frame.
        face_index: from `rasterize`, [H,W] or [T,H,W].

    Returns:
        float32 [H,W,C] (or [T,H,W,C]); background pixels are 0.
    """
    values = _as_values(face_attributes, "face_attributes")
    face_index = _as_face_index(face_index, values.shape[-2], values)
    out = np.zeros(face_index.shape + (values.shape[-1],), dtype=np.float32)
    covered = face_index >= 0
    if values.ndim == 3:
        out[covered] = values[np.nonzero(covered)[0], face_index[covered]]
    else:
        out[covered] = values[face_index[covered]]
    return out


def _as_values(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [N, C] or [T, N, C], got {array.shape}")
    return array.astype(np.float32, copy=False)


def _as_face_index(face_index, num_faces: int, values: np.ndarray) -> np.ndarray:
    index = np.asarray(face_index)
    if index.dtype.kind not in "iu" or index.ndim not in (2, 3):
        raise ValueError(
            f"face_index must be an integer array [H, W] or [T, H, W] as returned by rasterize, "
            f"got dtype {index.dtype} and shape {index.shape}"
        )
    if index.size and (index.min() < -1 or index.max() >= num_faces):
        raise ValueError(f"face_index values must be -1 (background) or 0..{num_faces - 1}")
    if values.ndim == 3 and (index.ndim != 3 or index.shape[0] != values.shape[0]):
        raise ValueError(
            f"per-frame values [T, ., C] with T={values.shape[0]} need face_index [T, H, W], "
            f"got {index.shape}"
        )
    return index


def _as_bary(bary, face_index: np.ndarray) -> np.ndarray:
    weights = np.asarray(bary, dtype=np.float32)
    if weights.shape != face_index.shape + (3,):
        raise ValueError(
            f"bary must have shape {face_index.shape + (3,)} to match face_index, got {weights.shape}"
        )
    return weights
