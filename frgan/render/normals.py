"""Normal maps: the structure images the generator is conditioned on.

A normal map stores, at every pixel covered by the mesh, the unit normal (nx, ny, nz) of
the visible surface (values in [-1, 1]); background pixels are exactly 0. The normal of
triangle (a, b, c) is normalize((b - a) x (c - a)): with image axes (x right, y down,
z away from the camera) a triangle that appears counter-clockwise on screen has a
normal towards the camera (nz < 0). FACE68_TRIANGLES is wound that way.
"""

import numpy as np

from frgan.render import _raster
from frgan.render._checks import as_faces, as_size, as_vertices, check_same_mesh


def normal_map(
    vertices, faces, height: int, width: int, *, smooth: bool = False, normal_vertices=None
):
    """Render the normal map of one frame: float32 [H,W,3] in [-1, 1], background exactly 0.

    Args:
        vertices: float [N,3] posed vertices in image pixels (x, y) and depth z (smaller
            nearer); they decide which triangle is seen at each pixel.
        faces: int [M,3].
        smooth: False = flat per-triangle normals (as in the paper); True = area-weighted
            per-vertex normals interpolated across each triangle and renormalized.
        normal_vertices: optional float [N,3], same topology, from which the normals are
            computed instead, e.g. the un-posed model-space mesh: as in the paper, the
            normals then do not turn with the head ("model space"). None (default) uses
            `vertices`, i.e. camera-space normals.
    """
    frames = as_vertices(vertices, batched=False)
    sources = (
        None
        if normal_vertices is None
        else as_vertices(normal_vertices, "normal_vertices", batched=False)
    )
    return _render(frames, faces, height, width, smooth, sources)[0]


def normal_maps(
    vertices, faces, height: int, width: int, *, smooth: bool = False, normal_vertices=None
):
    """Render a whole clip in one call: vertices [T,N,3] -> float32 [T,H,W,3].

    Same options as `normal_map`; normal_vertices may be [T,N,3] (one mesh per frame) or
    [N,3] (the same normals for every frame).
    """
    frames = as_vertices(vertices, batched=True)
    sources = None if normal_vertices is None else as_vertices(normal_vertices, "normal_vertices")
    return _render(frames, faces, height, width, smooth, sources)


def _render(frames, faces, height, width, smooth: bool, sources) -> np.ndarray:
    face_array = as_faces(faces, frames.shape[1])
    height, width = as_size(height, "height"), as_size(width, "width")
    if sources is None:
        sources = frames
    else:
        check_same_mesh(sources, frames, "normal_vertices")
        if sources.dtype != frames.dtype:  # the flat kernel reads both in one precision
            frames, sources = frames.astype(np.float64), sources.astype(np.float64)
    out = np.zeros((frames.shape[0], height, width, 3), dtype=np.float32)
    if smooth:
        _raster.smooth_normal_maps(frames, _vertex_normals(sources, face_array), face_array, out)
    else:
        _raster.flat_normal_maps(frames, sources, face_array, out)
    return out


def face_normals(vertices, faces) -> np.ndarray:
    """Unit normals of every triangle, float32 [M,3] (or [T,M,3]); zero for degenerate ones."""
    frames = as_vertices(vertices)
    face_array = as_faces(faces, frames.shape[1])
    corners = frames[:, face_array]  # [T,M,3 corners,3 xyz]
    normals = np.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    normals = _normalized(normals).astype(np.float32)
    return normals if np.ndim(vertices) == 3 else normals[0]


def vertex_normals(vertices, faces) -> np.ndarray:
    """Area-weighted unit vertex normals, float32 [N,3] (or [T,N,3]); zero for unused vertices."""
    frames = as_vertices(vertices)
    normals = _vertex_normals(frames, as_faces(faces, frames.shape[1])).astype(np.float32)
    return normals if np.ndim(vertices) == 3 else normals[0]


def _vertex_normals(frames: np.ndarray, faces: np.ndarray) -> np.ndarray:
    out = np.zeros(frames.shape, dtype=np.float64)
    _raster.vertex_normals(frames, faces, out)
    return out


def _normalized(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)
