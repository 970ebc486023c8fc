"""Tests of the fixed 68-landmark triangulation and the mean face template."""

from collections import Counter

import numpy as np

from frgan.render import (
    FACE68_MEAN,
    FACE68_TRIANGLES,
    face_normals,
    mean_face68,
    normal_map,
    rasterize,
)

SIZE = 128


def signed_areas(points, triangles):
    a, b, c = (points[triangles[:, k], :2].astype(np.float64) for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def pixel_of(xy):
    return int(xy[1]), int(xy[0])


def test_table_uses_all_points_without_duplicates():
    assert FACE68_TRIANGLES.dtype == np.int32 and FACE68_TRIANGLES.ndim == 2
    assert FACE68_TRIANGLES.shape[1] == 3
    assert set(np.unique(FACE68_TRIANGLES)) == set(range(68))
    as_sets = {frozenset(t) for t in FACE68_TRIANGLES.tolist()}
    assert len(as_sets) == len(FACE68_TRIANGLES)
    assert all(len(t) == 3 for t in as_sets)


def test_every_edge_is_shared_by_at_most_two_triangles():
    edges = Counter(
        frozenset((t[k], t[(k + 1) % 3])) for t in FACE68_TRIANGLES.tolist() for k in range(3)
    )
    assert max(edges.values()) == 2


def test_no_degenerate_triangles_and_consistent_winding_on_the_mean_face():
    areas = signed_areas(FACE68_MEAN, FACE68_TRIANGLES)
    assert np.all(areas < -1e-4)  # all counter-clockwise on screen, none sliver-thin
    normals = face_normals(FACE68_MEAN, FACE68_TRIANGLES)
    assert np.all(normals[:, 2] < 0)  # towards the camera


def test_no_overlapping_triangles_on_the_mean_face():
    vertices = mean_face68(SIZE, SIZE, fill=0.9)
    coverage = np.zeros((SIZE, SIZE), dtype=int)
    for triangle in FACE68_TRIANGLES:
        coverage += rasterize(vertices, triangle[None], SIZE, SIZE)[0] >= 0
    union = rasterize(vertices, FACE68_TRIANGLES, SIZE, SIZE)[0] >= 0
    assert coverage.max() == 1
    np.testing.assert_array_equal(coverage == 1, union)


def test_mouth_opening_is_a_hole_and_eyes_are_filled():
    vertices = mean_face68(SIZE, SIZE, fill=0.9)
    covered = rasterize(vertices, FACE68_TRIANGLES, SIZE, SIZE)[0] >= 0
    mouth_centre = vertices[[62, 66], :2].mean(axis=0)
    left_eye, right_eye = vertices[36:42, :2].mean(axis=0), vertices[42:48, :2].mean(axis=0)
    assert not covered[pixel_of(mouth_centre)]
    assert covered[pixel_of(left_eye)] and covered[pixel_of(right_eye)]


def test_mean_face_is_symmetric_frontal_and_nose_tip_nearest():
    assert FACE68_MEAN.shape == (68, 3) and FACE68_MEAN.dtype == np.float32
    assert int(np.argmin(FACE68_MEAN[:, 2])) == 30
    np.testing.assert_allclose(FACE68_MEAN[:, :2].min(axis=0)[0], -0.5, atol=1e-3)
    np.testing.assert_allclose(FACE68_MEAN[:, :2].max(axis=0)[0], 0.5, atol=1e-3)
    chin, nose_tip, nose_bridge = FACE68_MEAN[[8, 30, 27], 1]
    assert chin > nose_tip > nose_bridge  # y points down


def test_mean_face_normal_map_points_to_the_camera():
    vertices = mean_face68(64, 64)
    normals = normal_map(vertices, FACE68_TRIANGLES, 64, 64)
    covered = np.abs(normals).sum(-1) > 0
    assert 0.2 < covered.mean() < 0.5
    assert np.all(normals[..., 2][covered] < 0)
