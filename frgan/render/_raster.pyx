# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Scan-conversion kernels of the structure renderer; every loop runs without the GIL.

These kernels trust their inputs: the public functions in frgan.render validate and
convert them first (vertices float32 or float64 C-contiguous, faces int32 with in-range indices,
outputs preallocated, zero-filled where the background must be 0).

Conventions (see frgan/render/raster.py): pixel (i, j) has its centre at
(x = j + 0.5, y = i + 0.5); smaller z is nearer; both windings are drawn.

Watertightness: the edge function of an edge is always evaluated with its endpoints
in one canonical order (smaller (y, x) first), so two triangles sharing an edge get
bit-identical values of opposite meaning, and a pixel centre exactly on the edge
(value 0) goes to the one triangle for which it is a top or left edge.
"""

from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int32_t

import numpy as np

# Vertices are read in their own precision, so a float32 clip is not copied to float64
# first; all arithmetic is in double, so float32 input gives exactly the result of its
# (exact) float64 conversion.
ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _first_pixel(double lo, Py_ssize_t n) noexcept nogil:
    """Smallest k in [0, n) with k >= lo, or n when there is none."""
    cdef Py_ssize_t k
    if lo <= 0.0:
        return 0
    if lo >= n:
        return n
    k = <Py_ssize_t>lo
    return k + 1 if k < lo else k


cdef inline Py_ssize_t _last_pixel(double hi, Py_ssize_t n) noexcept nogil:
    """Largest k in [0, n) with k <= hi, or -1 when there is none."""
    if hi < 0.0:
        return -1
    if hi >= n - 1:
        return n - 1
    return <Py_ssize_t>hi


cdef inline void _triangle_normal(
    const real[:, :, ::1] vertices, Py_ssize_t t, int32_t a, int32_t b, int32_t c, double* n
) noexcept nogil:
    """n = (b - a) x (c - a) in double; its length is twice the triangle's area."""
    cdef double e1x = <double>vertices[t, b, 0] - <double>vertices[t, a, 0]
    cdef double e1y = <double>vertices[t, b, 1] - <double>vertices[t, a, 1]
    cdef double e1z = <double>vertices[t, b, 2] - <double>vertices[t, a, 2]
    cdef double e2x = <double>vertices[t, c, 0] - <double>vertices[t, a, 0]
    cdef double e2y = <double>vertices[t, c, 1] - <double>vertices[t, a, 1]
    cdef double e2z = <double>vertices[t, c, 2] - <double>vertices[t, a, 2]
    n[0] = e1y * e2z - e1z * e2y
    n[1] = e1z * e2x - e1x * e2z
    n[2] = e1x * e2y - e1y * e2x


cdef void _rasterize_frame(
    const real[:, :, ::1] vertices,
    Py_ssize_t t,
    const int32_t[:, ::1] faces,
    int32_t[:, ::1] face_index,
    float[:, :, ::1] bary,
    double[:, ::1] zbuf,
) noexcept nogil:
    """Rasterize frame t of `vertices` into face_index / bary / zbuf (all overwritten)."""
    cdef Py_ssize_t height = face_index.shape[0], width = face_index.shape[1]
    cdef Py_ssize_t f, i, j, k, e, p, q, i0, i1, j0, j1
    cdef double x[3]
    cdef double y[3]
    cdef double z[3]
    cdef double ax[3]
    cdef double ay[3]
    cdef double dx[3]
    cdef double dy[3]
    cdef double sign[3]
    cdef double inv_opp[3]
    cdef double w[3]
    cdef bint owns_tie[3]
    cdef double xmin, xmax, ymin, ymax, px, py, edge, opp, total, depth
    cdef bint inside, degenerate
    cdef int32_t vi

    for i in range(height):
        for j in range(width):
            face_index[i, j] = -1
            zbuf[i, j] = INFINITY
            bary[i, j, 0] = 0.0
            bary[i, j, 1] = 0.0
            bary[i, j, 2] = 0.0

    for f in range(faces.shape[0]):
        for k in range(3):
            vi = faces[f, k]
            x[k] = vertices[t, vi, 0]
            y[k] = vertices[t, vi, 1]
            z[k] = vertices[t, vi, 2]

        # Pixel centres j + 0.5 inside [xmin, xmax], clamped to the image (clipping).
        xmin = min(x[0], min(x[1], x[2]))
        xmax = max(x[0], max(x[1], x[2]))
        j0 = _first_pixel(xmin - 0.5, width)
        j1 = _last_pixel(xmax - 0.5, width)
        if j0 > j1:
            continue
        ymin = min(y[0], min(y[1], y[2]))
        ymax = max(y[0], max(y[1], y[2]))
        i0 = _first_pixel(ymin - 0.5, height)
        i1 = _last_pixel(ymax - 0.5, height)
        if i0 > i1:
            continue

        # Edge e is the one opposite vertex e, from canonical endpoint a along (dx, dy).
        degenerate = False
        for e in range(3):
            p = (e + 1) % 3
            q = (e + 2) % 3
            if y[q] < y[p] or (y[q] == y[p] and x[q] < x[p]):
                p, q = q, p
            ax[e] = x[p]
            ay[e] = y[p]
            dx[e] = x[q] - x[p]
            dy[e] = y[q] - y[p]
            opp = dx[e] * (y[e] - ay[e]) - dy[e] * (x[e] - ax[e])
            if opp == 0.0:
                degenerate = True
                break
            sign[e] = 1.0 if opp > 0.0 else -1.0
            inv_opp[e] = 1.0 / opp
            # Inward normal sign[e] * (-dy, dx); canonical order gives dy >= 0.
            owns_tie[e] = (dy[e] > 0.0 and opp < 0.0) or (dy[e] == 0.0 and opp > 0.0)
        if degenerate:
            continue

        for i in range(i0, i1 + 1):
            py = i + 0.5
            for j in range(j0, j1 + 1):
                px = j + 0.5
                inside = True
                for e in range(3):
                    edge = dx[e] * (py - ay[e]) - dy[e] * (px - ax[e])
                    if not (sign[e] * edge > 0.0 or (edge == 0.0 and owns_tie[e])):
                        inside = False
                        break
                    w[e] = edge * inv_opp[e]
                if not inside:
                    continue
                total = w[0] + w[1] + w[2]
                w[0] /= total
                w[1] /= total
                w[2] /= total
                depth = w[0] * z[0] + w[1] * z[1] + w[2] * z[2]
                if depth < zbuf[i, j]:
                    zbuf[i, j] = depth
                    face_index[i, j] = <int32_t>f
                    bary[i, j, 0] = <float>w[0]
                    bary[i, j, 1] = <float>w[1]
                    bary[i, j, 2] = <float>w[2]


def rasterize_frames(
    const real[:, :, ::1] vertices,
    const int32_t[:, ::1] faces,
    int32_t[:, :, ::1] face_index,
    float[:, :, :, ::1] bary,
    float[:, :, ::1] depth,
):
    """Rasterize T frames: vertices [T,N,3] -> face_index [T,H,W], bary [T,H,W,3], depth [T,H,W]."""
    cdef Py_ssize_t t, i, j
    cdef Py_ssize_t height = face_index.shape[1], width = face_index.shape[2]
    cdef double[:, ::1] zbuf = np.empty((height, width), dtype=np.float64)
    with nogil:
        for t in range(vertices.shape[0]):
            _rasterize_frame(vertices, t, faces, face_index[t], bary[t], zbuf)
            for i in range(height):
                for j in range(width):
                    depth[t, i, j] = <float>zbuf[i, j]


def flat_normal_maps(
    const real[:, :, ::1] vertices,
    const real[:, :, ::1] normal_vertices,
    const int32_t[:, ::1] faces,
    float[:, :, :, ::1] out,
):
    """Per-pixel unit normal of the visible face, computed from `normal_vertices`.

    out [T,H,W,3] must be zero-filled (background stays 0). normal_vertices has T or 1
    frames (1 = the same normals for every frame). A face that is degenerate in
    normal_vertices gets the zero normal.
    """
    cdef Py_ssize_t t, tn, i, j, f
    cdef Py_ssize_t height = out.shape[1], width = out.shape[2]
    cdef double n[3]
    cdef double norm
    cdef int32_t[:, ::1] face_index = np.empty((height, width), dtype=np.int32)
    cdef float[:, :, ::1] bary = np.empty((height, width, 3), dtype=np.float32)
    cdef double[:, ::1] zbuf = np.empty((height, width), dtype=np.float64)
    with nogil:
        for t in range(vertices.shape[0]):
            tn = t if normal_vertices.shape[0] > 1 else 0
            _rasterize_frame(vertices, t, faces, face_index, bary, zbuf)
            for i in range(height):
                for j in range(width):
                    f = face_index[i, j]
                    if f < 0:
                        continue
                    _triangle_normal(normal_vertices, tn, faces[f, 0], faces[f, 1], faces[f, 2], n)
                    norm = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
                    if norm > 0.0:
                        out[t, i, j, 0] = <float>(n[0] / norm)
                        out[t, i, j, 1] = <float>(n[1] / norm)
                        out[t, i, j, 2] = <float>(n[2] / norm)


def smooth_normal_maps(
    const real[:, :, ::1] vertices,
    const double[:, :, ::1] vertex_normals,
    const int32_t[:, ::1] faces,
    float[:, :, :, ::1] out,
):
    """Per-pixel interpolated and renormalized vertex normals (T or 1 frames of normals).

    out [T,H,W,3] must be zero-filled; a pixel whose interpolated normal is zero stays 0.
    """
    cdef Py_ssize_t t, tn, i, j, f, k
    cdef Py_ssize_t height = out.shape[1], width = out.shape[2]
    cdef int32_t v
    cdef double nx, ny, nz, norm, wk
    cdef int32_t[:, ::1] face_index = np.empty((height, width), dtype=np.int32)
    cdef float[:, :, ::1] bary = np.empty((height, width, 3), dtype=np.float32)
    cdef double[:, ::1] zbuf = np.empty((height, width), dtype=np.float64)
    with nogil:
        for t in range(vertices.shape[0]):
            tn = t if vertex_normals.shape[0] > 1 else 0
            _rasterize_frame(vertices, t, faces, face_index, bary, zbuf)
            for i in range(height):
                for j in range(width):
                    f = face_index[i, j]
                    if f < 0:
                        continue
                    nx = 0.0
                    ny = 0.0
                    nz = 0.0
                    for k in range(3):
                        v = faces[f, k]
                        wk = bary[i, j, k]
                        nx = nx + wk * vertex_normals[tn, v, 0]
                        ny = ny + wk * vertex_normals[tn, v, 1]
                        nz = nz + wk * vertex_normals[tn, v, 2]
                    norm = sqrt(nx * nx + ny * ny + nz * nz)
                    if norm > 0.0:
                        out[t, i, j, 0] = <float>(nx / norm)
                        out[t, i, j, 1] = <float>(ny / norm)
                        out[t, i, j, 2] = <float>(nz / norm)


def vertex_normals(const real[:, :, ::1] vertices, const int32_t[:, ::1] faces, double[:, :, ::1] out):
    """Area-weighted unit vertex normals: out [T,N,3] (zero-filled) <- sum of face cross products."""
    cdef Py_ssize_t t, f, k, p
    cdef int32_t v
    cdef double n[3]
    cdef double norm
    with nogil:
        for t in range(vertices.shape[0]):
            for f in range(faces.shape[0]):
                # The unnormalized cross product has length 2 * area: area weighting for free.
                _triangle_normal(vertices, t, faces[f, 0], faces[f, 1], faces[f, 2], n)
                for k in range(3):
                    v = faces[f, k]
                    out[t, v, 0] += n[0]
                    out[t, v, 1] += n[1]
                    out[t, v, 2] += n[2]
            for p in range(vertices.shape[1]):
                norm = sqrt(out[t, p, 0] ** 2 + out[t, p, 1] ** 2 + out[t, p, 2] ** 2)
                if norm > 0.0:
                    out[t, p, 0] /= norm
                    out[t, p, 1] /= norm
                    out[t, p, 2] /= norm
