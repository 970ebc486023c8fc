"""Shaded rendering (ambient + Lambert) of a mesh with per-vertex albedo."""

import numpy as np

from frgan.render._checks import as_faces, as_size, as_vertices, check_same_mesh
from frgan.render.normals import _vertex_normals
from frgan.render.raster import interpolate, rasterize


def shade(
    vertices,
    faces,
    albedo,
    height: int,
    width: int,
    *,
    light_dir=(0.0, 0.0, -1.0),
    ambient: float = 0.4,
    diffuse: float = 0.6,
    background=None,
):
    """Render `albedo * (ambient + diffuse * max(0, n . l))` with smooth camera-space normals.

    Args:
        vertices: float [N,3] or a clip [T,N,3], image pixels + depth (smaller z nearer).
        faces: int [M,3], wound so that normals point towards the camera (nz < 0, i.e.
            counter-clockwise on screen, as FACE68_TRIANGLES); lighting is one-sided.
        albedo: float [N,3] (or [T,N,3]) per-vertex RGB in [0, 1].
        light_dir: direction from the surface towards the light (normalized here); the
            default (0, 0, -1) is a light at the camera.
        ambient, diffuse: non-negative weights of the two terms.
        background: None (black), a grey level or an RGB triple in [0, 1].

    Returns:
        image float32 [H,W,3] (or [T,H,W,3]) in [0, 1], and the coverage mask bool
        [H,W] (or [T,H,W]).
    """
    batched = np.ndim(vertices) == 3
    frames = as_vertices(vertices)
    face_array = as_faces(faces, frames.shape[1])
    height, width = as_size(height, "height"), as_size(width, "width")
    colours = _as_albedo(albedo, frames)
    light = _as_light(light_dir)
    if ambient < 0 or diffuse < 0:
        raise ValueError(f"ambient and diffuse must be >= 0, got {ambient} and {diffuse}")
    fill = _as_background(background)

    face_index, bary, _ = rasterize(frames, face_array, height, width)
    normals = interpolate(_vertex_normals(frames, face_array), face_array, face_index, bary)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    lambert = np.clip(normals @ light, 0.0, None)[..., None]
    surface_colour = interpolate(colours, face_array, face_index, bary)
    image = np.clip(surface_colour * (ambient + diffuse * lambert), 0.0, 1.0)
    mask = face_index >= 0
    image[~mask] = fill
    image = image.astype(np.float32)
    return (image, mask) if batched else (image[0], mask[0])


def _as_albedo(albedo, frames: np.ndarray) -> np.ndarray:
    colours = as_vertices(albedo, "albedo")
    check_same_mesh(colours, frames, "albedo")
    if colours.min() < 0 or colours.max() > 1:
        raise ValueError(
            f"albedo must lie in [0, 1], got values in [{colours.min()}, {colours.max()}]"
        )
    return (
        colours if colours.shape[0] == frames.shape[0] else np.broadcast_to(colours, frames.shape)
    )


def _as_light(light_dir) -> np.ndarray:
    light = np.asarray(light_dir, dtype=np.float64)
    if light.shape != (3,) or not np.isfinite(light).all() or not np.linalg.norm(light) > 0:
        raise ValueError(f"light_dir must be a finite non-zero 3-vector, got {light_dir!r}")
    return (light / np.linalg.norm(light)).astype(np.float32)


def _as_background(background) -> np.ndarray:
    if background is None:
        return np.zeros(3, dtype=np.float32)
    fill = np.broadcast_to(np.asarray(background, dtype=np.float32), (3,))
    if not np.all((fill >= 0) & (fill <= 1)):
        raise ValueError(
            f"background must be None, a grey level or an RGB triple in [0, 1], got {background!r}"
        )
    return fill
