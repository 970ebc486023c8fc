"""Input validation shared by the renderer's public functions.

Every check raises ValueError with a message naming the argument, what was wrong and
what is expected; the Cython kernels behind the public API rely on these checks.
"""

from numbers import Integral

import numpy as np


def as_vertices(vertices, name: str = "vertices", *, batched: bool | None = None) -> np.ndarray:
    """Vertices as C-contiguous float32/float64 [T,N,3] (a single [N,3] frame becomes T=1).

    The precision is kept (the kernels compute in double either way, so float32 input
    rasterizes exactly like its float64 conversion).

    batched: True requires [T,N,3], False requires [N,3], None accepts either.
    """
    array = np.asarray(vertices)
    if array.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    expected = {True: "[T, N, 3]", False: "[N, 3]", None: "[N, 3] or [T, N, 3]"}[batched]
    allowed_ndim = {True: (3,), False: (2,), None: (2, 3)}[batched]
    if array.ndim not in allowed_ndim or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    # min/max propagate NaN and inf without allocating a mask of the whole clip.
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at index {tuple(int(k) for k in bad)}); "
            "all coordinates must be finite"
        )
    if array.ndim == 2:
        array = array[None]
    return np.ascontiguousarray(array)


def as_faces(faces, num_vertices: int, name: str = "faces") -> np.ndarray:
    """Faces as int32 C-contiguous [M,3], every index in 0..num_vertices-1."""
    array = np.asarray(faces)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array (int32/int64), got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must have shape [M, 3], got {array.shape}")
    if array.size:
        low, high = array.min(), array.max()
        if low < 0:
            row = int(np.argwhere(array < 0)[0][0])
            raise ValueError(
                f"{name}[{row}] = {array[row].tolist()} contains a negative index; "
                f"indices must be in 0..{num_vertices - 1} (negative indexing is not supported)"
            )
        if high >= num_vertices:
            row = int(np.argwhere(array >= num_vertices)[0][0])
            raise ValueError(
                f"{name}[{row}] = {array[row].tolist()} refers to a vertex that does not exist; "
                f"there are {num_vertices} vertices (indices 0..{num_vertices - 1})"
            )
    return np.ascontiguousarray(array, dtype=np.int32)


def as_size(value, name: str) -> int:
    """A positive image size (height or width)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def check_same_mesh(values: np.ndarray, frames: np.ndarray, name: str) -> None:
    """values [1 or T, N, 3] must match frames [T, N, 3] in point count (1 frame broadcasts)."""
    if values.shape[1] != frames.shape[1]:
        raise ValueError(
            f"{name} must have as many points as vertices ({frames.shape[1]}), got {values.shape[1]}"
        )
    if values.shape[0] not in (1, frames.shape[0]):
        raise ValueError(
            f"{name} must have 1 or {frames.shape[0]} frames like vertices, got {values.shape[0]}"
        )
