"""Structure renderer: rasterization, normal maps and shading of triangle meshes.

Image conventions (shared by the whole project): x, y are pixel coordinates (x right,
y down), pixel (i, j) has its centre at (j + 0.5, i + 0.5), z is depth with smaller z
nearer the camera; projection is orthographic. See frgan/render/raster.py for the
fill rule and depth test.
"""

from frgan.render.face68 import FACE68_MEAN, FACE68_TRIANGLES, mean_face68
from frgan.render.normals import face_normals, normal_map, normal_maps, vertex_normals
from frgan.render.raster import gather_face_attributes, interpolate, rasterize
from frgan.render.shading import shade

__all__ = [
    "FACE68_MEAN",
    "FACE68_TRIANGLES",
    "face_normals",
    "gather_face_attributes",
    "interpolate",
    "mean_face68",
    "normal_map",
    "normal_maps",
    "rasterize",
    "shade",
    "vertex_normals",
]
