"""Tests of the structure renderer against a slow pure-NumPy reference rasterizer."""

import numpy as np
import pytest
from conftest import load_script

from frgan.render import (
    face_normals,
    gather_face_attributes,
    interpolate,
    normal_map,
    normal_maps,
    rasterize,
    shade,
    vertex_normals,
)

HEIGHT, WIDTH = 24, 32  # non-square on purpose: catches swapped axes


def reference_rasterize(vertices, faces, height, width, tie_eps=1e-9):
    """Straightforward z-buffer rasterizer: every triangle tested on every pixel centre.

    Inclusive edges, nearer (smaller z) wins, the earlier face wins exact depth ties.
    Also returns `ambiguous`: pixels whose centre lies (within tie_eps) on an edge of some
    triangle or where two covering triangles have (nearly) equal depth; there the
    fill rule of the fast rasterizer may legitimately pick another face.
    """
    v = np.asarray(vertices, dtype=np.float64)
    rows, cols = np.mgrid[0:height, 0:width]
    px, py = cols + 0.5, rows + 0.5
    face_index = np.full((height, width), -1)
    bary = np.zeros((height, width, 3))
    depth = np.full((height, width), np.inf)
    ambiguous = np.zeros((height, width), dtype=bool)
    depths_seen = []
    for f, (a, b, c) in enumerate(faces):
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = v[a], v[b], v[c]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0:
            continue
        w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
        w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
        w2 = 1.0 - w0 - w1
        weights = np.stack([w0, w1, w2], axis=-1)
        inside = weights.min(axis=-1) >= 0
        ambiguous |= np.abs(weights).min(axis=-1) < tie_eps
        z = w0 * z0 + w1 * z1 + w2 * z2
        for other in depths_seen:
            ambiguous |= inside & np.isclose(z, other, rtol=0, atol=1e-9)
        depths_seen.append(np.where(inside, z, np.nan))
        nearer = inside & (z < depth)
        face_index[nearer] = f
        bary[nearer] = weights[nearer]
        depth[nearer] = z[nearer]
    return face_index, bary, depth, ambiguous


def random_mesh(rng, num_vertices=30, num_faces=40, margin=8.0):
    """Random triangles, many of them partly outside the image, with random depths."""
    xy = rng.uniform([-margin, -margin], [WIDTH + margin, HEIGHT + margin], size=(num_vertices, 2))
    z = rng.uniform(-10, 10, size=(num_vertices, 1))
    faces = np.array([rng.choice(num_vertices, 3, replace=False) for _ in range(num_faces)])
    # Drop repeated triangles: their depths tie everywhere.
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    return np.concatenate([xy, z], axis=1), faces


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtypes", [(np.float64, np.int64), (np.float32, np.int32)])
def test_matches_reference_on_random_meshes(seed, dtypes):
    rng = np.random.default_rng(seed)
    vertices, faces = random_mesh(rng)
    vertices, faces = vertices.astype(dtypes[0]), faces.astype(dtypes[1])

    face_index, bary, depth = rasterize(vertices, faces, HEIGHT, WIDTH)
    expected_index, expected_bary, expected_depth, ambiguous = reference_rasterize(
        vertices, faces, HEIGHT, WIDTH
    )

    assert face_index.dtype == np.int32 and bary.dtype == np.float32 and depth.dtype == np.float32
    assert ambiguous.mean() < 0.01
    clear = ~ambiguous
    np.testing.assert_array_equal(face_index[clear], expected_index[clear])
    covered = clear & (expected_index >= 0)
    assert covered.sum() > 50
    np.testing.assert_allclose(bary[covered], expected_bary[covered], atol=1e-5)
    np.testing.assert_allclose(depth[covered], expected_depth[covered], rtol=1e-5, atol=1e-4)
    assert np.all(np.isinf(depth[face_index < 0])) and np.all(bary[face_index < 0] == 0)


def test_float32_input_renders_exactly_like_its_float64_conversion():
    vertices, faces = random_mesh(np.random.default_rng(10))
    single = vertices.astype(np.float32)
    for got, expected in zip(
        rasterize(single, faces, HEIGHT, WIDTH),
        rasterize(single.astype(np.float64), faces, HEIGHT, WIDTH),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)
    for smooth in (False, True):
        np.testing.assert_array_equal(
            normal_map(single, faces, HEIGHT, WIDTH, smooth=smooth),
            normal_map(single.astype(np.float64), faces, HEIGHT, WIDTH, smooth=smooth),
        )


def test_both_windings_are_drawn():
    vertices, faces = random_mesh(np.random.default_rng(9))
    forward = rasterize(vertices, faces, HEIGHT, WIDTH)[0]
    backward = rasterize(vertices, faces[:, ::-1], HEIGHT, WIDTH)[0]
    assert (forward >= 0).sum() > 50
    np.testing.assert_array_equal(forward, backward)


def test_clip_in_one_call_equals_frame_by_frame():
    rng = np.random.default_rng(7)
    clip = np.stack([random_mesh(rng)[0] for _ in range(3)])
    faces = random_mesh(np.random.default_rng(8))[1]
    face_index, bary, depth = rasterize(clip, faces, HEIGHT, WIDTH)
    assert face_index.shape == (3, HEIGHT, WIDTH) and bary.shape == (3, HEIGHT, WIDTH, 3)
    for t in range(3):
        single = rasterize(clip[t], faces, HEIGHT, WIDTH)
        np.testing.assert_array_equal(face_index[t], single[0])
        np.testing.assert_array_equal(bary[t], single[1])
        np.testing.assert_array_equal(depth[t], single[2])


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangle_wins(near_first):
    big = [[-5, -5], [40, -5], [-5, 40]]
    near = np.array([xy + [1.0] for xy in big])
    far = np.array([xy + [2.0] for xy in big])
    vertices = np.concatenate([near, far] if near_first else [far, near])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    face_index, _, depth = rasterize(vertices, faces, 8, 8)
    assert np.all(face_index == (0 if near_first else 1))
    np.testing.assert_allclose(depth, 1.0)


def test_depth_test_uses_interpolated_depth():
    # Two crossing slanted planes: the left half is nearer on one, the right half on the other.
    square = [[0, 0], [16, 0], [0, 16], [16, 16]]
    rising = [xy + [xy[0] - 8.0] for xy in square]  # z grows to the right
    falling = [xy + [8.0 - xy[0]] for xy in square]
    vertices = np.array(rising + falling, dtype=np.float64)
    faces = np.array([[0, 2, 1], [1, 2, 3], [4, 6, 5], [5, 6, 7]])
    face_index, _, _ = rasterize(vertices, faces, 16, 16)
    assert np.all(face_index[:, :8] <= 1)  # rising plane is nearer where x < 8
    assert np.all(face_index[:, 8:] >= 2)


def test_shared_edges_are_watertight():
    """A mesh covering the image covers every pixel centre exactly once, even when edges
    and vertices lie exactly on pixel centres and the windings are mixed."""
    rng = np.random.default_rng(3)
    grid_x, grid_y = np.meshgrid(np.arange(-2, 20, 2.0) + 0.5, np.arange(-2, 20, 2.0) + 0.5)
    vertices = np.stack([grid_x, grid_y, np.zeros_like(grid_x)], axis=-1)
    interior = (slice(1, -1), slice(1, -1))
    jitter = rng.uniform(-0.45, 0.45, size=vertices[interior][..., :2].shape)
    jitter[::2] = 0  # keep every other row exactly on pixel centres (axis-aligned edges)
    vertices[interior + (slice(0, 2),)] += jitter
    vertices = vertices.reshape(-1, 3)
    n = grid_x.shape[1]
    faces = []
    for i in range(grid_x.shape[0] - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            diagonal = [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
            faces += [t if rng.random() < 0.5 else t[::-1] for t in diagonal]
    faces = np.array(faces)

    coverage = np.zeros((16, 16), dtype=int)
    for triangle in faces:
        coverage += rasterize(vertices, triangle[None], 16, 16)[0] >= 0
    assert np.all(coverage == 1)
    assert np.all(rasterize(vertices, faces, 16, 16)[0] >= 0)


def test_fan_around_a_pixel_centre_covers_it_once():
    centre = [4.5, 4.5, 0.0]
    ring = [
        [4.5 + 3 * np.cos(a), 4.5 + 3 * np.sin(a), 0.0] for a in np.linspace(0, 2 * np.pi, 9)[:-1]
    ]
    ring[0] = [7.5, 4.5, 0.0]  # an edge exactly along the pixel row
    vertices = np.array([centre] + ring)
    faces = np.array([[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)])
    owners = [k for k in range(8) if rasterize(vertices, faces[k : k + 1], 9, 9)[0][4, 4] >= 0]
    assert len(owners) == 1


def test_partly_outside_triangle_is_clipped_not_skipped():
    vertices = np.array([[-50.0, -50.0, 0.0], [200.0, 4.0, 0.0], [4.0, 200.0, 0.0]])
    face_index, _, _ = rasterize(vertices, np.array([[0, 1, 2]]), 16, 16)
    expected, _, _, ambiguous = reference_rasterize(vertices, [[0, 1, 2]], 16, 16)
    assert (face_index == 0).sum() > 100
    np.testing.assert_array_equal(face_index[~ambiguous], expected[~ambiguous])


def test_huge_triangle_around_the_image_covers_it():
    vertices = np.array([[-1e9, -1e9, 1.0], [3e9, -1e9, 1.0], [-1e9, 3e9, 1.0]])
    face_index, _, depth = rasterize(vertices, np.array([[0, 1, 2]]), 5, 7)
    assert np.all(face_index == 0) and np.allclose(depth, 1.0)


def test_triangle_entirely_outside_draws_nothing():
    vertices = np.array([[-9.0, -9.0, 0.0], [-1.0, -9.0, 0.0], [-9.0, 30.0, 0.0]])
    assert np.all(rasterize(vertices, np.array([[0, 1, 2]]), 16, 16)[0] == -1)


def test_degenerate_triangles_are_ignored():
    collinear_along_a_pixel_row = [[0.5, 4.5, -9.0], [15.5, 4.5, -9.0], [8.0, 4.5, -9.0]]
    normal_triangle_behind = [[0.0, 0.0, 5.0], [16.0, 0.0, 5.0], [0.0, 16.0, 5.0]]
    vertices = np.array(collinear_along_a_pixel_row + normal_triangle_behind)
    faces = np.array([[0, 1, 2], [0, 0, 1], [3, 3, 3], [3, 4, 5]])
    face_index, _, _ = rasterize(vertices, faces, 8, 8)
    assert set(np.unique(face_index)) <= {-1, 3}
    assert (face_index == 3).sum() > 20


def test_empty_face_list_gives_background():
    face_index, bary, depth = rasterize(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64), 4, 5)
    assert face_index.shape == (4, 5) and np.all(face_index == -1) and np.all(np.isinf(depth))


GOOD_VERTICES = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
GOOD_FACES = np.array([[0, 1, 2]])


@pytest.mark.parametrize(
    ("vertices", "faces", "height", "width", "message"),
    [
        (
            GOOD_VERTICES * np.array([np.nan, 1, 1]),
            GOOD_FACES,
            8,
            8,
            "vertices contains NaN or inf",
        ),
        (
            GOOD_VERTICES + np.array([0, np.inf, 0]),
            GOOD_FACES,
            8,
            8,
            "vertices contains NaN or inf",
        ),
        (GOOD_VERTICES.astype(np.int64), GOOD_FACES, 8, 8, "vertices must be float32 or float64"),
        (GOOD_VERTICES[:, :2], GOOD_FACES, 8, 8, "vertices must have shape"),
        (GOOD_VERTICES[None, None], GOOD_FACES, 8, 8, "vertices must have shape"),
        (GOOD_VERTICES, np.array([[0, 1, 3]]), 8, 8, "faces[0]"),
        (GOOD_VERTICES, np.array([[0, 1, -1]]), 8, 8, "negative index"),
        (GOOD_VERTICES, GOOD_FACES.astype(np.float32), 8, 8, "faces must be an integer array"),
        (GOOD_VERTICES, np.array([0, 1, 2]), 8, 8, "faces must have shape [M, 3]"),
        (GOOD_VERTICES, np.array([[0, 1]]), 8, 8, "faces must have shape [M, 3]"),
        (GOOD_VERTICES, GOOD_FACES, 0, 8, "height must be a positive integer"),
        (GOOD_VERTICES, GOOD_FACES, 8, -3, "width must be a positive integer"),
        (GOOD_VERTICES, GOOD_FACES, 8, 8.0, "width must be a positive integer"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_problem(vertices, faces, height, width, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rasterize(vertices, faces, height, width)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normal_map(vertices, faces, height, width)


def test_interpolate_reproduces_vertex_positions():
    rng = np.random.default_rng(1)
    vertices, faces = random_mesh(rng)
    face_index, bary, depth = rasterize(vertices, faces, HEIGHT, WIDTH)
    positions = interpolate(vertices, faces, face_index, bary)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    covered = face_index >= 0
    np.testing.assert_allclose(positions[..., 0][covered], cols[covered] + 0.5, atol=1e-4)
    np.testing.assert_allclose(positions[..., 1][covered], rows[covered] + 0.5, atol=1e-4)
    np.testing.assert_allclose(positions[..., 2][covered], depth[covered], atol=1e-4)
    assert np.all(positions[~covered] == 0)


def test_per_frame_attributes_and_face_attributes():
    rng = np.random.default_rng(2)
    vertices, faces = random_mesh(rng)
    clip = np.stack([vertices, vertices[:, [1, 0, 2]]])
    face_index, bary, _ = rasterize(clip, faces, HEIGHT, WIDTH)
    colours = rng.uniform(size=(2, len(vertices), 4))
    per_frame = interpolate(colours, faces, face_index, bary)
    assert per_frame.shape == (2, HEIGHT, WIDTH, 4)
    np.testing.assert_allclose(per_frame[1], interpolate(colours[1], faces, face_index[1], bary[1]))

    ids = np.arange(len(faces), dtype=np.float32)[:, None]
    flat = gather_face_attributes(ids, face_index)
    covered = face_index >= 0
    np.testing.assert_array_equal(flat[..., 0][covered], face_index[covered])
    assert np.all(flat[~covered] == 0)


def test_interpolate_rejects_mismatched_inputs():
    vertices, faces = random_mesh(np.random.default_rng(0))
    face_index, bary, _ = rasterize(vertices, faces, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match="bary must have shape"):
        interpolate(vertices, faces, face_index, bary[:-1])
    with pytest.raises(ValueError, match="faces"):
        interpolate(vertices[:5], faces, face_index, bary)
    with pytest.raises(ValueError, match="face_index values"):
        gather_face_attributes(np.zeros((3, 1)), face_index)


def test_flat_normal_map_range_background_and_values():
    rng = np.random.default_rng(4)
    vertices, faces = random_mesh(rng)
    normals = normal_map(vertices, faces, HEIGHT, WIDTH)
    face_index = rasterize(vertices, faces, HEIGHT, WIDTH)[0]
    covered = face_index >= 0
    assert normals.dtype == np.float32 and normals.shape == (HEIGHT, WIDTH, 3)
    assert normals.min() >= -1 and normals.max() <= 1
    assert np.all(normals[~covered] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(normals[covered], axis=-1), 1.0, atol=1e-5)
    expected = face_normals(vertices, faces)[face_index[covered]]
    np.testing.assert_allclose(normals[covered], expected, atol=1e-5)


def test_smooth_normals_of_a_plane_are_its_normal():
    vertices = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 10.0], [0.0, 20.0, 0.0], [20.0, 20.0, 10.0]])
    faces = np.array([[0, 2, 1], [1, 2, 3]])  # counter-clockwise on screen
    plane_normal = np.array([10.0, 0.0, -20.0]) / np.hypot(10.0, 20.0)
    for smooth in (False, True):
        normals = normal_map(vertices, faces, 16, 16, smooth=smooth)
        np.testing.assert_allclose(
            normals.reshape(-1, 3), np.tile(plane_normal, (256, 1)), atol=1e-5
        )
    np.testing.assert_allclose(
        vertex_normals(vertices, faces), np.tile(plane_normal, (4, 1)), atol=1e-6
    )


def test_model_space_normals_do_not_turn_with_the_head():
    vertices = np.array([[2.0, 2.0, 0.0], [14.0, 3.0, 1.0], [3.0, 14.0, 2.0]])
    faces = np.array([[0, 2, 1]])
    angle = 0.3
    turn = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    turned = (vertices - 8) @ turn.T + 8
    for smooth in (False, True):
        model = normal_map(turned, faces, 16, 16, smooth=smooth, normal_vertices=vertices)
        camera = normal_map(turned, faces, 16, 16, smooth=smooth)
        covered = np.abs(model).sum(-1) > 0
        np.testing.assert_allclose(
            model[covered], np.tile(face_normals(vertices, faces), (covered.sum(), 1)), atol=1e-5
        )
        np.testing.assert_allclose(
            camera[covered], np.tile(face_normals(turned, faces), (covered.sum(), 1)), atol=1e-5
        )


@pytest.mark.parametrize("smooth", [False, True])
def test_normal_maps_clip_equals_single_frames(smooth):
    rng = np.random.default_rng(5)
    vertices, faces = random_mesh(rng)
    clip = np.stack([vertices, vertices + [1.0, -2.0, 0.5], vertices * [1.0, 1.0, -1.0]])
    model = rng.normal(size=vertices.shape)
    for normal_vertices in (None, model, np.stack([model] * 3)):
        maps = normal_maps(
            clip, faces, HEIGHT, WIDTH, smooth=smooth, normal_vertices=normal_vertices
        )
        assert maps.shape == (3, HEIGHT, WIDTH, 3)
        for t in range(3):
            frame_model = None if normal_vertices is None else model
            single = normal_map(
                clip[t], faces, HEIGHT, WIDTH, smooth=smooth, normal_vertices=frame_model
            )
            np.testing.assert_array_equal(maps[t], single)


def test_normal_maps_rejects_wrong_normal_vertices():
    vertices, faces = random_mesh(np.random.default_rng(0))
    with pytest.raises(ValueError, match="normal_vertices must have as many points"):
        normal_map(vertices, faces, 8, 8, normal_vertices=vertices[:-1])
    with pytest.raises(ValueError, match="normal_vertices must have 1 or 2 frames"):
        normal_maps(np.stack([vertices] * 2), faces, 8, 8, normal_vertices=np.stack([vertices] * 3))


def test_shade_lambert_on_a_plane():
    vertices = np.array([[0.0, 0.0, 0.0], [16.0, 0.0, 0.0], [0.0, 16.0, 0.0], [16.0, 16.0, 0.0]])
    faces = np.array([[0, 2, 1], [1, 2, 3]])
    albedo = np.full((4, 3), 0.5)
    image, mask = shade(
        vertices, faces, albedo, 8, 8, light_dir=(0, 0, -1), ambient=0.4, diffuse=0.6
    )
    np.testing.assert_allclose(image, 0.5, atol=1e-6)
    assert mask.all() and image.dtype == np.float32
    grazing, _ = shade(vertices, faces, albedo, 8, 8, light_dir=(1, 0, 0))
    np.testing.assert_allclose(grazing, 0.5 * 0.4, atol=1e-6)


def test_shade_clip_background_and_range():
    rng = np.random.default_rng(6)
    vertices, faces = random_mesh(rng)
    clip = np.stack([vertices, vertices + [2.0, 0.0, 0.0]])
    albedo = rng.uniform(size=(len(vertices), 3))
    image, mask = shade(
        clip, faces, albedo, HEIGHT, WIDTH, light_dir=(0.3, -0.2, -1.0), background=(0.0, 0.5, 1.0)
    )
    assert image.shape == (2, HEIGHT, WIDTH, 3) and mask.shape == (2, HEIGHT, WIDTH)
    assert image.min() >= 0 and image.max() <= 1
    np.testing.assert_array_equal(mask, rasterize(clip, faces, HEIGHT, WIDTH)[0] >= 0)
    np.testing.assert_allclose(image[~mask], np.tile([0.0, 0.5, 1.0], ((~mask).sum(), 1)))
    with pytest.raises(ValueError, match="albedo must lie in"):
        shade(vertices, faces, albedo + 1, 8, 8)
    with pytest.raises(ValueError, match="light_dir"):
        shade(vertices, faces, albedo, 8, 8, light_dir=(0, 0, 0))


def test_benchmark_mesh_has_the_size_of_the_original_face_model():
    bench = load_script("bench_render")
    vertices, faces = bench.dense_face_mesh(64)
    assert vertices.shape == (53_215, 3) and faces.shape == (105_840, 3)
    coverage = (rasterize(vertices, faces, 64, 64)[0] >= 0).mean()
    assert 0.35 < coverage < 0.45
    assert np.all(face_normals(vertices, faces)[:, 2] <= 0)  # consistently wound, facing the camera


def test_face_parts_show_an_open_mouth_closed_eyes_and_brows_in_their_colours():
    from frgan.data.structure import StructureRenderer
    from frgan.render.face68 import mean_face68
    from frgan.render.parts import PART_COLOURS, part_coverage

    face = mean_face68(64, 64)
    face[60:68, 1] = face[60:68, 1].mean()  # inner lips together
    open_mouth = face.copy()
    open_mouth[[61, 62, 63], 1] -= 1.5  # inner lips apart
    open_mouth[[65, 66, 67], 1] += 1.5
    closed_cavity = part_coverage(face, 64, 64)["cavity"].sum()
    assert part_coverage(open_mouth, 64, 64)["cavity"].sum() > max(10, 4 * closed_cavity)
    closed_eyes = face.copy()
    closed_eyes[36:48, 1] = face[36:48, 1].mean()  # lids meet
    assert (
        part_coverage(closed_eyes, 64, 64)["eyes"].sum()
        < 0.5 * part_coverage(face, 64, 64)["eyes"].sum()
    )
    coverage = part_coverage(face, 64, 64)
    assert all(0 <= c.min() and c.max() <= 1 for c in coverage.values())
    assert coverage["brows"].sum() > 10 and coverage["lips"].sum() > 10

    landmarks = np.stack([face, open_mouth]).astype(np.float32)
    plain = StructureRenderer("normal", 64)(landmarks)
    parts = StructureRenderer("normal_parts", 64)(landmarks)
    cavity = part_coverage(open_mouth, 64, 64)["cavity"] > 0.99
    np.testing.assert_allclose(
        parts[1][:, cavity].T, np.tile(PART_COLOURS["cavity"], (cavity.sum(), 1))
    )
    away = sum(part_coverage(face, 64, 64).values()) == 0
    np.testing.assert_array_equal(parts[0][:, away], plain[0][:, away])  # shape elsewhere untouched


def test_part_coverage_counts_covered_subsamples_in_a_frame_of_any_shape():
    from frgan.render.face68 import mean_face68
    from frgan.render.parts import SUPERSAMPLE, part_coverage, part_layers, subsample_coverage

    face = mean_face68(64, 64)
    face[:, 0] -= 8  # the face in a frame 48 wide and 64 high
    face[[61, 62, 63], 1] -= 1.5  # an open mouth
    face[[65, 66, 67], 1] += 1.5
    for name, coverage in part_coverage(face, 64, 48, teeth=True).items():
        assert coverage.shape == (64, 48) and coverage.dtype == np.float32, name
        counts = coverage * SUPERSAMPLE**2  # each pixel: how many of its subsamples are covered
        np.testing.assert_allclose(counts, counts.round(), atol=1e-4)
    block_mean = load_script("bench_geometry").block_mean_coverage
    for layer in part_layers(face, 64, 48, teeth=True).values():
        np.testing.assert_allclose(
            subsample_coverage(layer, 64, 48), block_mean(layer, 64, 48), atol=1e-6
        )
    lips = part_coverage(face, 64, 48)["lips"]
    rows, cols = np.indices(lips.shape) + 0.5
    centre = np.array([(lips * cols).sum(), (lips * rows).sum()]) / lips.sum()
    assert (
        np.abs(centre - face[48:60, :2].mean(0)).max() < 1.5
    )  # where the lips are, not transposed


def test_teeth_fill_a_smiles_narrow_opening_and_part_where_the_jaw_drops():
    from frgan.data.structure import StructureRenderer
    from frgan.render.face68 import mean_face68
    from frgan.render.parts import PART_COLOURS, part_coverage

    face = mean_face68(64, 64)
    face[60:68, 1] = face[60:68, 1].mean()  # inner lips together at rest
    assert "teeth" not in part_coverage(face, 64, 64)
    at_rest = part_coverage(face, 64, 64, teeth=True)["teeth"].sum()  # the lip line's pixels

    smile = face.copy()  # lips part a little, the jaw stays: the teeth show
    smile[[61, 62, 63], 1] -= 1.0
    smile[[65, 66, 67], 1] += 1.0
    parts = part_coverage(smile, 64, 64, teeth=True)
    assert parts["teeth"].sum() > max(10, 4 * at_rest)
    assert parts["teeth"].sum() > 5 * parts["cavity"].sum()
    plain = part_coverage(smile, 64, 64)
    np.testing.assert_allclose(parts["teeth"] + parts["cavity"], plain["cavity"], atol=1e-6)

    dropped = smile.copy()  # and the jaw drops 6 px: a dark gap opens between the teeth
    dropped[list(range(5, 12)) + [55, 56, 57, 58, 59, 65, 66, 67], 1] += 6.0
    parts = part_coverage(dropped, 64, 64, teeth=True)
    assert parts["cavity"].sum() > 20 and parts["teeth"].sum() > 10
    column = parts["teeth"][:, 32] + parts["cavity"][:, 32]
    rows = np.flatnonzero(column > 0.5)
    top, middle, bottom = rows[0], rows[len(rows) // 2], rows[-1]
    assert parts["teeth"][top, 32] > 0.5 and parts["teeth"][bottom, 32] > 0.5
    assert parts["cavity"][middle, 32] > 0.5

    maps = StructureRenderer("normal_parts_teeth", 64)(np.stack([smile]).astype(np.float32))
    teeth = part_coverage(smile, 64, 64, teeth=True)["teeth"] > 0.99
    np.testing.assert_allclose(
        maps[0][:, teeth].T, np.tile(PART_COLOURS["teeth"], (teeth.sum(), 1))
    )


def test_drawn_teeth_agree_with_the_renderers_better_than_the_rest_line_did():
    """The teeth edges in parts.py label most cavity pixels of rendered smiles and open mouths
    as the renderer does; the first rule (the lips' meeting line at rest) drew much of a dropped
    jaw's dark cavity as teeth (scripts/fit_teeth_edges.py fits the edges)."""
    from frgan.render import parts
    from frgan.synthetic.take_video import render_take

    fit = load_script("fit_teeth_edges")
    found = {
        expression: fit.cavity_pixels(render_take(0, 1, expression, 0, image_size=128,
                                                  min_frames=24, max_frames=24, with_labels=True))
        for expression in ("happiness", "surprise")
    }  # fmt: skip
    for expression, pixels in found.items():
        assert pixels["teeth"].any() and not pixels["teeth"].all()
        accuracy = fit.scores(pixels, parts.TEETH_EDGES)["accuracy"]
        assert accuracy > {"happiness": 0.75, "surprise": 0.6}[expression], (expression, accuracy)
    surprise = found["surprise"]
    drawn_right = {
        name: fit.scores(surprise, edges)["accuracy"]
        for name, edges in (("now", parts.TEETH_EDGES), ("at rest", fit.AT_REST))
    }
    assert drawn_right["now"] > drawn_right["at rest"] + 0.1, drawn_right
