"""Tests of the 468-point structure mesh (MediaPipe topology) and its mean face."""

import itertools
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from frgan.data.landmarks.mediapipe_68 import MEDIAPIPE_TO_68
from frgan.render import face_normals, normal_map, rasterize
from frgan.render.mesh468 import (
    MESH468_ANCHORS,
    MESH468_MEAN,
    MESH468_TRIANGLES,
    mean_mesh468,
)

# MediaPipe's inner lip contour: the rim of the mouth opening.
INNER_LIP = {78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311}
INNER_LIP |= {310, 415}
# Upper and lower lids of both eyes (FACEMESH_RIGHT_EYE and FACEMESH_LEFT_EYE).
EYES = {33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173}
EYES |= {263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398}


def edge_uses(triangles):
    return Counter(
        frozenset(pair) for t in triangles.tolist() for pair in itertools.combinations(t, 2)
    )


def signed_areas(points, triangles):
    a, b, c = (points[triangles[:, k], :2].astype(np.float64) for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def test_table_uses_all_468_points_once_per_triangle_without_duplicates():
    assert MESH468_TRIANGLES.dtype == np.int32 and MESH468_TRIANGLES.shape[1] == 3
    assert set(np.unique(MESH468_TRIANGLES).tolist()) == set(range(468))
    assert all(len(set(t)) == 3 for t in MESH468_TRIANGLES.tolist())
    assert len({frozenset(t) for t in MESH468_TRIANGLES.tolist()}) == len(MESH468_TRIANGLES)
    assert MESH468_MEAN.shape == (468, 3) and MESH468_MEAN.dtype == np.float32


def test_mesh_is_a_surface_whose_only_holes_are_the_outline_and_the_mouth():
    uses = edge_uses(MESH468_TRIANGLES)
    assert max(uses.values()) == 2
    rim = {v for edge, n in uses.items() if n == 1 for v in edge}
    inner_rim = rim & (INNER_LIP | EYES)
    assert inner_rim == INNER_LIP  # the eyes are filled, the mouth opening is a hole
    outline = rim - INNER_LIP
    assert len(outline) == 36 and 10 in outline and 152 in outline  # forehead top, chin
    # sphere with two holes: V - E + F = 0
    assert 468 - len(uses) + len(MESH468_TRIANGLES) == 0


def test_every_triangle_faces_the_camera_on_the_mean_face_and_none_is_degenerate():
    areas = signed_areas(MESH468_MEAN, MESH468_TRIANGLES)
    assert (areas < 0).all()  # counter-clockwise on screen with y down
    assert np.abs(areas).min() > 1e-7
    assert (face_normals(MESH468_MEAN, MESH468_TRIANGLES)[:, 2] < 0).all()


def test_triangles_do_not_overlap_on_the_mean_face():
    size = 256
    vertices = mean_mesh468(size, size, fill=0.9)
    covered = rasterize(vertices, MESH468_TRIANGLES, size, size)[0] >= 0
    area = np.abs(signed_areas(vertices, MESH468_TRIANGLES)).sum() / 2
    # the raster covers the summed area of the triangles: nothing is drawn twice
    assert covered.sum() == pytest.approx(area, rel=0.02)


def test_mean_face_is_frontal_and_normalised_like_face68():
    xy = MESH468_MEAN[:, :2]
    np.testing.assert_allclose((xy.max(0) - xy.min(0)).max(), 1.0, atol=1e-3)
    np.testing.assert_allclose((xy.max(0) + xy.min(0)) / 2, 0.0, atol=1e-3)
    assert abs(float(MESH468_MEAN[:, 2].mean())) < 1e-3
    assert int(np.argmin(MESH468_MEAN[:, 2])) in (1, 4)  # the nose tip is nearest
    forehead, nose_tip, chin = MESH468_MEAN[[10, 4, 152], 1]
    assert forehead < nose_tip < chin
    left_eye, right_eye = MESH468_MEAN[33, 0], MESH468_MEAN[263, 0]
    assert left_eye < 0 < right_eye and abs(left_eye + right_eye) < 0.03


def test_anchors_leave_out_the_mouth_jaw_brows_and_lids():
    lower_face = set(MEDIAPIPE_TO_68[3:14].tolist()) | set(MEDIAPIPE_TO_68[48:].tolist())
    brows_and_lids = set(MEDIAPIPE_TO_68[17:27].tolist()) | (EYES - {33, 133, 362, 263})
    assert set(MESH468_ANCHORS.tolist()).isdisjoint(lower_face | brows_and_lids | INNER_LIP)
    assert {33, 133, 362, 263} <= set(MESH468_ANCHORS.tolist())


def test_normal_map_of_the_mean_face_covers_the_face_with_a_hole_at_the_mouth():
    size = 64
    vertices = mean_mesh468(size, size)
    normals = normal_map(vertices, MESH468_TRIANGLES, size, size)
    covered = np.abs(normals).sum(-1) > 0
    assert covered[int(vertices[4, 1]), int(vertices[4, 0])]  # nose tip
    assert covered[int(vertices[159, 1]), int(vertices[159, 0])]  # upper lid: eyes filled
    assert (normals[covered][:, 2] < 0).all()


def test_the_committed_table_is_the_tessellation_that_ships_with_mediapipe():
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    derive = pytest.importorskip("derive_mesh468")
    edges, eyes = derive.tessellation()
    derived = derive.faces_from_edges(edges, MESH468_MEAN[:, :2])
    tessellated = {frozenset(t) for t in derived.tolist()}
    table = {frozenset(t) for t in MESH468_TRIANGLES.tolist()}
    eye_fill = table - tessellated
    assert tessellated <= table and len(eye_fill) == 28
    assert all(set(t) <= EYES for t in eye_fill)
