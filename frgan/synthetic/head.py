"""A procedural 3D head: template mesh, mouth/eye interiors, 68 landmark ids, identity basis.

Model space (before posing): x right, y down, z depth with the face at negative z (smaller
nearer, as in image space). One unit is about half the width of the head.

The skin is a latitude/longitude grid around the vertical axis (azimuth `phi`, 0 = front;
polar angle `theta`, 0 = crown), denser over the face. Two horizontal slits are cut into
it (a row of quads left out): the mouth and the two eyes. Their edge rows coincide when
closed and part when the lids/lips move, revealing separate meshes behind them: eyeballs,
a mouth cavity, teeth and a tongue. The per-vertex grid coordinates double as texture
coordinates, so a subject's skin texture lives in the same (column, row) space.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Canonical feature positions (model units) shared by geometry, expressions and texture.
HEAD_HEIGHT = 1.25  # half height of the skull ellipsoid
HEAD_WIDTH = 0.95
FRONT_DEPTH = 1.0
BACK_DEPTH = 1.2
EYE_Y, EYE_X, EYE_HALF_WIDTH = -0.12, 0.36, 0.13
EYE_OPEN_UPPER, EYE_OPEN_LOWER = 0.065, 0.03
BROW_Y = -0.36
NOSE_TIP_Y = 0.30
MOUTH_Y, MOUTH_HALF_WIDTH = 0.56, 0.27
CHIN_Y = 0.97
EYEBALL_RADIUS = 0.17

# Mesh parts (per-vertex `part`), also used as material ids when rendering.
SKIN, EYEBALL, MOUTH_CAVITY, UPPER_TEETH, LOWER_TEETH, TONGUE, NECK, TORSO = range(8)
PART_NAMES = (
    "skin",
    "eyeball",
    "mouth_cavity",
    "upper_teeth",
    "lower_teeth",
    "tongue",
    "neck",
    "torso",
)
BODY_PARTS = (NECK, TORSO)  # follow the head pose but neither identity nor expression

IDENTITY_NAMES = (
    "face_width",
    "face_length",
    "jaw_width",
    "chin",
    "nose_length",
    "nose_width",
    "nose_depth",
    "eye_spacing",
    "eye_size",
    "lip_fullness",
    "mouth_width",
    "brow_height",
    "cheek_fullness",
    "forehead_slope",
)


def smoothstep(edge0, edge1, x):
    t = np.clip((np.asarray(x, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gaussian(*offsets_over_sigma):
    return np.exp(-sum(np.square(o) for o in offsets_over_sigma))


@dataclass(frozen=True)
class HeadModel:
    """The template head. All arrays are read-only views; N vertices, M triangles."""

    vertices: np.ndarray  # float64 [N,3] rest template (eyes open, lips closed)
    faces: np.ndarray  # int32 [M,3], counter-clockwise on screen when seen from the front
    uv: np.ndarray  # float64 [N,2] skin: (column, row) grid coords; eyeball: local disc coords
    part: np.ndarray  # int8 [N] one of SKIN..TORSO
    mouth_side: np.ndarray  # int8 [N] -1 above the mouth slit, +1 below (jaw), 0 elsewhere
    eye_side: np.ndarray  # int8 [N] -1 above an eye slit (upper lid), +1 below, 0 elsewhere
    front: np.ndarray  # float64 [N] 1 on the face, 0 at the back of the head
    landmark_ids: np.ndarray  # int64 [68] vertex ids in the 68-point order
    eye_pairs: np.ndarray  # int64 [P,2] (upper lid, lower lid) vertex pairs along the eye slits
    mouth_pairs: np.ndarray  # int64 [Q,2] (upper lip, lower lip) vertex pairs along the mouth slit
    identity_basis: np.ndarray  # float64 [K,N,3] displacement per unit identity parameter
    row_theta: np.ndarray  # float64 [R] polar angle of each skin grid row
    col_phi: np.ndarray  # float64 [C] azimuth of each skin grid column (last = first + 2 pi)
    eye_rows: tuple  # (upper, lower) grid rows of the eye slits
    mouth_rows: tuple  # (upper, lower) grid rows of the mouth slit

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    def shape(self, identity: np.ndarray) -> np.ndarray:
        """Rest vertices [N,3] of a subject with identity parameters [K]."""
        return self.vertices + np.einsum("k,knd->nd", identity, self.identity_basis)


# --------------------------------------------------------------------------- surface


def skull_surface(phi, theta):
    """Skull + facial relief at grid angles; returns (x, y, z) arrays (no slits opened)."""
    phi, theta = np.broadcast_arrays(np.asarray(phi, float), np.asarray(theta, float))
    sin_t = np.sin(theta)
    y = -HEAD_HEIGHT * np.cos(theta)
    x = HEAD_WIDTH * head_width_profile(y) * np.sin(phi)
    cos_p = np.cos(phi)
    depth = np.where(cos_p > 0, FRONT_DEPTH * np.abs(cos_p) ** 0.75, BACK_DEPTH * cos_p)
    z = -sin_t * depth
    z = z + facial_relief(x, y) * smoothstep(0.25, 0.75, cos_p)
    ear = gaussian((np.abs(phi) - 1.62) / 0.2, (y - 0.12) / 0.2)
    x = x + np.sign(np.sin(phi)) * 0.09 * ear
    return x, y, z


def head_width_profile(y):
    """Half width of the head (fraction of HEAD_WIDTH) at height y: round skull, square jaw."""
    y = np.clip(np.abs(y) / HEAD_HEIGHT, 0.0, 1.0) * np.sign(y)
    skull = np.sqrt(1.0 - y**2)
    jaw = (1.0 - np.abs(y) ** 2.6) ** (1 / 2.6) * (1.0 - 0.2 * smoothstep(0.25, 0.95, y))
    return np.where(y > 0, jaw, skull)


def facial_relief(x, y):
    """Depth offsets (negative = towards the camera) that turn the ellipsoid into a face."""
    ax = np.abs(x)
    relief = 0.09 * gaussian((ax - EYE_X) / 0.17, (y - EYE_Y) / 0.11)  # eye sockets
    relief -= 0.035 * gaussian((ax - EYE_X) / 0.11, (y - EYE_Y) / 0.06)  # lids over the eyeball
    relief -= 0.05 * gaussian(x / 0.55, (y - BROW_Y - 0.03) / 0.07)  # brow ridge
    relief -= 0.05 * gaussian((ax - 0.5) / 0.16, (y - 0.12) / 0.14)  # cheekbones
    # Nose: a ridge from between the eyes to the tip, widening towards the nostrils.
    progress = np.clip((y - EYE_Y + 0.02) / (NOSE_TIP_Y - EYE_Y + 0.02), 0.0, 1.0)
    ridge_height = (0.04 + 0.19 * progress**1.4) * np.where(
        y > NOSE_TIP_Y,
        gaussian((y - NOSE_TIP_Y) / 0.045),
        gaussian(np.minimum(y - EYE_Y + 0.02, 0) / 0.08),
    )
    ridge_width = 0.055 + 0.06 * progress
    relief -= ridge_height * gaussian(x / ridge_width)
    relief -= 0.045 * gaussian(x / 0.065, (y - NOSE_TIP_Y + 0.01) / 0.05)  # tip
    relief -= 0.06 * gaussian((ax - 0.095) / 0.05, (y - NOSE_TIP_Y - 0.025) / 0.045)  # alae
    # Mouth: muzzle, lips, the groove under the lower lip, chin.
    relief -= 0.07 * gaussian(x / 0.38, (y - MOUTH_Y + 0.05) / 0.25)
    relief += 0.012 * gaussian(x / 0.025, (y - (NOSE_TIP_Y + MOUTH_Y) / 2) / 0.07)  # philtrum
    relief -= 0.045 * gaussian(x / 0.24, (y - MOUTH_Y + 0.03) / 0.035)
    relief -= 0.05 * gaussian(x / 0.2, (y - MOUTH_Y - 0.05) / 0.04)
    relief += 0.02 * gaussian(x / 0.2, (y - MOUTH_Y - 0.14) / 0.04)
    relief -= 0.07 * gaussian(x / 0.18, (y - CHIN_Y + 0.02) / 0.1)
    return relief


def smooth_face_depth(x, y):
    """Depth of the face without lips/nose detail: the surface the teeth and cavity follow."""
    sin_t = np.sqrt(np.clip(1.0 - (y / HEAD_HEIGHT) ** 2, 0.0, 1.0))
    sin_p = np.clip(x / (HEAD_WIDTH * np.maximum(head_width_profile(y), 1e-6)), -1, 1)
    depth = -sin_t * FRONT_DEPTH * np.sqrt(1 - sin_p**2) ** 0.75
    return depth - 0.07 * gaussian(x / 0.38, (y - MOUTH_Y + 0.05) / 0.25)


def slit_profile(x, half_width, power=0.9):
    """Opening along a slit: 1 in the middle, 0 at and beyond the corners."""
    u = np.clip(1.0 - np.abs(x) / half_width, 0.0, 1.0)
    return np.sin(0.5 * np.pi * u) ** power


def eye_profile(x, upper: bool):
    """Almond-shaped lid opening over one eye (x measured from the midline)."""
    offset = np.abs(x) - EYE_X
    # Upper lid peaks a little towards the nose, lower lid a little towards the temple.
    shift = -0.02 if upper else 0.02
    return slit_profile(offset - shift * (1 - (offset / EYE_HALF_WIDTH) ** 2), EYE_HALF_WIDTH, 0.8)


# --------------------------------------------------------------------------- grid


def _segment(lo, hi, step, include_hi=True):
    n = max(int(np.ceil((hi - lo) / step)), 1)
    samples = np.linspace(lo, hi, n + 1)
    return samples if include_hi else samples[:-1]


def _grid_angles(density: float):
    """Row polar angles and column azimuths; rows pair up exactly at the eye and mouth slits."""
    fine, coarse = 0.024 / density, 0.08 / density
    eye_theta = np.arccos(-EYE_Y / HEAD_HEIGHT)
    mouth_theta = np.arccos(-MOUTH_Y / HEAD_HEIGHT)
    gap = fine
    rows = np.concatenate(
        [
            _segment(0.04, 0.7, coarse, include_hi=False),
            _segment(0.7, eye_theta - gap / 2, fine),
            _segment(eye_theta + gap / 2, mouth_theta - gap / 2, fine),
            _segment(mouth_theta + gap / 2, 2.62, fine, include_hi=False),
            _segment(2.62, np.pi - 0.04, coarse),
        ]
    )
    eye_upper = int(np.argmin(np.abs(rows - (eye_theta - gap / 2))))
    mouth_upper = int(np.argmin(np.abs(rows - (mouth_theta - gap / 2))))
    half = np.concatenate(
        [_segment(0.0, 1.15, fine, include_hi=False), _segment(1.15, np.pi, coarse)]
    )
    cols = np.concatenate([-half[:0:-1], half])  # symmetric, -pi .. pi (seam duplicated)
    return rows, cols, (eye_upper, eye_upper + 1), (mouth_upper, mouth_upper + 1)


def _grid_quads(n_rows, n_cols, skip):
    """Two counter-clockwise (on screen) triangles per grid cell, except cells in `skip`."""
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(n_cols - 1), indexing="ij")
    keep = ~skip
    a = (r * n_cols + c)[keep]
    b, d, e = a + 1, a + n_cols, a + n_cols + 1
    # Columns grow to the right (x) and rows downwards (y): (a, d, b) is counter-clockwise
    # on screen for a front-facing cell, given y down.
    return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)])


# --------------------------------------------------------------------------- parts


def _patch(x_range, y_range, n_x, n_y, depth_fn, part):
    """A small grid patch facing the camera: x, y spans and a depth function of (x, y)."""
    xs = np.linspace(*x_range, n_x)
    ys = np.linspace(*y_range, n_y)
    gx, gy = np.meshgrid(xs, ys)
    verts = np.stack([gx, gy, depth_fn(gx, gy)], -1).reshape(-1, 3)
    skip = np.zeros((n_y - 1, n_x - 1), bool)
    faces = _grid_quads(n_y, n_x, skip)
    uv = np.stack([gx, gy], -1).reshape(-1, 2)
    return verts, faces, uv, np.full(len(verts), part, np.int8)


def _eyeball(center_x, n=12):
    """Front cap of an eyeball behind one eye slit; uv = position on the unit disc."""
    angle = np.linspace(-1.2, 1.2, n)
    gx, gy = np.meshgrid(angle, angle)  # angular coordinates (radians) on the sphere
    x = EYEBALL_RADIUS * np.sin(gx) * np.cos(gy)
    y = EYEBALL_RADIUS * np.sin(gy)
    z = -EYEBALL_RADIUS * np.cos(gx) * np.cos(gy)
    lid_depth = skull_surface(np.arcsin(center_x / HEAD_WIDTH), np.arccos(-EYE_Y / HEAD_HEIGHT))[2]
    centre = np.array([center_x, EYE_Y, lid_depth + EYEBALL_RADIUS + 0.012])
    verts = np.stack([x, y, z], -1).reshape(-1, 3) + centre
    faces = _grid_quads(n, n, np.zeros((n - 1, n - 1), bool))
    uv = np.stack([x / EYEBALL_RADIUS, y / EYEBALL_RADIUS], -1).reshape(-1, 2)
    return verts, faces, uv, np.full(len(verts), EYEBALL, np.int8)


def _neck():
    theta = np.linspace(-np.pi, np.pi, 33)
    ys = np.linspace(0.55, 2.7, 12)
    gt, gy = np.meshgrid(theta, ys)
    x = 0.5 * np.sin(gt)
    z = 0.2 - 0.46 * np.cos(gt)
    verts = np.stack([x, gy, z], -1).reshape(-1, 3)
    faces = _grid_quads(len(ys), len(theta), np.zeros((len(ys) - 1, len(theta) - 1), bool))
    uv = np.stack([gt, gy], -1).reshape(-1, 2)
    return verts, faces, uv, np.full(len(verts), NECK, np.int8)


def _torso():
    """Shoulders in clothing: a bell that widens below the neck."""
    theta = np.linspace(-np.pi, np.pi, 33)
    ys = np.linspace(1.4, 2.9, 10)
    gt, gy = np.meshgrid(theta, ys)
    spread = smoothstep(1.4, 2.2, gy)
    x = (0.54 + 1.05 * spread) * np.sin(gt)
    z = 0.25 - (0.5 + 0.2 * spread) * np.cos(gt)
    verts = np.stack([x, gy, z], -1).reshape(-1, 3)
    faces = _grid_quads(len(ys), len(theta), np.zeros((len(ys) - 1, len(theta) - 1), bool))
    uv = np.stack([gt, gy], -1).reshape(-1, 2)
    return verts, faces, uv, np.full(len(verts), TORSO, np.int8)


def _mouth_parts():
    hw = MOUTH_HALF_WIDTH
    behind = lambda offset: lambda x, y: smooth_face_depth(x, y) + offset  # noqa: E731
    cavity = _patch(
        (-hw - 0.18, hw + 0.18),
        (MOUTH_Y - 0.14, MOUTH_Y + 0.36),
        14,
        10,
        behind(0.16),
        MOUTH_CAVITY,
    )
    upper = _patch(
        (-hw + 0.03, hw - 0.03),
        (MOUTH_Y - 0.09, MOUTH_Y + 0.018),
        20,
        4,
        behind(0.045),
        UPPER_TEETH,
    )
    lower = _patch(
        (-hw + 0.05, hw - 0.05), (MOUTH_Y - 0.005, MOUTH_Y + 0.09), 18, 4, behind(0.06), LOWER_TEETH
    )

    def tongue_depth(x, y):
        return (
            smooth_face_depth(x, y) + 0.11 - 0.03 * gaussian(x / 0.15, (y - MOUTH_Y - 0.14) / 0.1)
        )

    tongue = _patch((-0.17, 0.17), (MOUTH_Y + 0.03, MOUTH_Y + 0.26), 8, 7, tongue_depth, TONGUE)
    return [cavity, upper, lower, tongue]


# --------------------------------------------------------------------------- assembly


@lru_cache(maxsize=4)
def build_head(density: float = 1.0) -> HeadModel:
    """Build the template head; `density` scales the grid resolution (1.0: ~14k skin vertices)."""
    rows, cols, eye_rows, mouth_rows = _grid_angles(density)
    n_rows, n_cols = len(rows), len(cols)
    theta, phi = np.meshgrid(rows, cols, indexing="ij")
    x, y, z = skull_surface(phi, theta)
    row_index, col_index = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")

    # Which side of each slit a skin vertex lies on.
    eye_band = np.abs(np.abs(x) - EYE_X) < EYE_HALF_WIDTH + 0.1
    eye_side = np.where(
        eye_band & (np.abs(y - EYE_Y) < 0.25), np.where(row_index <= eye_rows[0], -1, 1), 0
    )
    mouth_band = (np.abs(x) < MOUTH_HALF_WIDTH + 0.15) & (np.cos(phi) > 0)
    mouth_side = np.where(
        mouth_band & (np.abs(y - MOUTH_Y) < 0.6), np.where(row_index <= mouth_rows[0], -1, 1), 0
    )

    # Close both slits (their two rows meet in the middle), then open the eyes at rest.
    for (upper, lower), in_slit in (
        (eye_rows, np.abs(np.abs(x) - EYE_X) <= EYE_HALF_WIDTH),
        (mouth_rows, np.abs(x) <= MOUTH_HALF_WIDTH),
    ):
        middle = 0.5 * (y[upper] + y[lower])
        for row in (upper, lower):
            y[row] = np.where(in_slit[row] & (np.cos(phi[row]) > 0), middle, y[row])
    y = y + eyelid_opening(x, y, eye_side)

    # Slit cells: between the two slit rows, both columns inside the slit.
    skip = np.zeros((n_rows - 1, n_cols - 1), bool)
    front = np.cos(phi[0]) > 0
    eye_cols = (np.abs(np.abs(x[eye_rows[0]]) - EYE_X) <= EYE_HALF_WIDTH) & front
    mouth_cols = (np.abs(x[mouth_rows[0]]) <= MOUTH_HALF_WIDTH) & front
    skip[eye_rows[0]] = eye_cols[:-1] & eye_cols[1:]
    skip[mouth_rows[0]] = mouth_cols[:-1] & mouth_cols[1:]

    skin_verts = np.stack([x, y, z], -1).reshape(-1, 3)
    skin_faces = _grid_quads(n_rows, n_cols, skip)
    skin_uv = np.stack([col_index, row_index], -1).reshape(-1, 2).astype(np.float64)
    pieces = [(skin_verts, skin_faces, skin_uv, np.full(len(skin_verts), SKIN, np.int8))]
    pieces += [_eyeball(-EYE_X), _eyeball(EYE_X)] + _mouth_parts() + [_neck(), _torso()]

    verts, faces, uvs, parts, offset = [], [], [], [], 0
    for v, f, uv, p in pieces:
        verts.append(v)
        faces.append(f + offset)
        uvs.append(uv)
        parts.append(p)
        offset += len(v)
    verts = np.concatenate(verts)
    parts = np.concatenate(parts)
    n_skin = n_rows * n_cols

    def per_vertex(skin_values, interior_value, dtype):
        out = np.full(len(verts), interior_value, dtype)
        out[:n_skin] = skin_values.reshape(-1)
        return out

    # Mouth interior: the lower teeth, the tongue and the cavity's lower half ride on the jaw.
    mouth_side_all = per_vertex(mouth_side, 0, np.int8)
    mouth_side_all[np.isin(parts, (LOWER_TEETH, TONGUE))] = 1
    mouth_side_all[parts == UPPER_TEETH] = -1
    cavity = parts == MOUTH_CAVITY
    mouth_side_all[cavity] = np.where(verts[cavity, 1] > MOUTH_Y + 0.03, 1, -1)

    def grid_id(row, col):
        return row * n_cols + col

    eye_pairs, mouth_pairs = [], []
    for col in np.nonzero(eye_cols)[0]:
        eye_pairs.append((grid_id(eye_rows[0], col), grid_id(eye_rows[1], col)))
    for col in np.nonzero(mouth_cols)[0]:
        mouth_pairs.append((grid_id(mouth_rows[0], col), grid_id(mouth_rows[1], col)))

    head_front = per_vertex(smoothstep(0.0, 0.6, np.cos(phi)), 1.0, np.float64)
    head_front[np.isin(parts, BODY_PARTS)] = 0.0
    head = dict(
        vertices=verts,
        faces=np.concatenate(faces).astype(np.int32),
        uv=np.concatenate(uvs),
        part=parts,
        mouth_side=mouth_side_all,
        eye_side=per_vertex(eye_side, 0, np.int8),
        front=head_front,
        eye_pairs=np.array(eye_pairs, np.int64),
        mouth_pairs=np.array(mouth_pairs, np.int64),
        row_theta=rows,
        col_phi=cols,
        eye_rows=eye_rows,
        mouth_rows=mouth_rows,
    )
    head["landmark_ids"] = _landmark_ids(verts, n_rows, n_cols, eye_rows, mouth_rows)
    head["identity_basis"] = identity_basis(
        verts, parts, head["mouth_side"], head["eye_side"], head_front
    )
    for value in head.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return HeadModel(**head)


def eyelid_opening(x, y, eye_side):
    """Vertical displacement that opens the closed eye slits into almond-shaped eyes."""
    upper = -EYE_OPEN_UPPER * eye_profile(x, True) * gaussian((y - EYE_Y) / 0.12)
    lower = EYE_OPEN_LOWER * eye_profile(x, False) * gaussian((y - EYE_Y) / 0.1)
    return np.where(eye_side < 0, upper, np.where(eye_side > 0, lower, 0.0))


# --------------------------------------------------------------------------- landmarks


def _landmark_ids(verts, n_rows, n_cols, eye_rows, mouth_rows):
    """Vertex ids of the 68 landmarks (usual order; subject's right = image left = -x)."""
    skin = verts[: n_rows * n_cols]
    front_skin = np.nonzero(skin[:, 2] < -0.2)[0]

    def nearest(x, y):
        d = np.hypot(skin[front_skin, 0] - x, skin[front_skin, 1] - y)
        return int(front_skin[np.argmin(d)])

    def on_row(row, x):
        cols = np.arange(n_cols)
        ids = row * n_cols + cols
        ids = ids[skin[ids, 2] < -0.2]
        return int(ids[np.argmin(np.abs(skin[ids, 0] - x))])

    # Jaw 0-16: from the right ear down round the chin to the left ear.
    jaw_angles = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 17)
    ids = [
        nearest(0.86 * np.sin(a) * (0.78 + 0.22 * abs(np.sin(a))), 1.03 * np.cos(a))
        for a in jaw_angles
    ]
    # Brows 17-26: outer to inner on the right brow, inner to outer on the left.
    brow_x = np.linspace(0.62, 0.12, 5)
    brow_y = BROW_Y + 0.015 - 0.05 * np.sin(np.pi * (brow_x - 0.1) / 0.55)
    ids += [nearest(-bx, by) for bx, by in zip(brow_x, brow_y, strict=True)]
    ids += [nearest(bx, by) for bx, by in zip(brow_x[::-1], brow_y[::-1], strict=True)]
    # Nose 27-35: bridge top to tip, then the base of the nose right to left.
    ids += [nearest(0.0, y) for y in np.linspace(EYE_Y - 0.04, NOSE_TIP_Y - 0.01, 4)]
    ids += [
        nearest(x, NOSE_TIP_Y + 0.05 - 0.02 * (abs(x) < 0.01))
        for x in (-0.11, -0.055, 0.0, 0.055, 0.11)
    ]
    # Eyes 36-47: corner, two upper-lid points, corner, two lower-lid points.
    up, low = eye_rows
    for sign in (-1, 1):
        outer, inner = sign * (EYE_X + EYE_HALF_WIDTH), sign * (EYE_X - EYE_HALF_WIDTH)
        # Points a third and two thirds of the way from the outer to the inner corner.
        third, two_thirds = (sign * (EYE_X + EYE_HALF_WIDTH * (1 - 2 * k / 3)) for k in (1, 2))
        if sign < 0:  # right eye (image left): outer corner first
            ids += [on_row(up, outer), on_row(up, third), on_row(up, two_thirds), on_row(up, inner)]
            ids += [on_row(low, two_thirds), on_row(low, third)]
        else:  # left eye: inner corner first
            ids += [on_row(up, inner), on_row(up, two_thirds), on_row(up, third), on_row(up, outer)]
            ids += [on_row(low, third), on_row(low, two_thirds)]
    # Mouth 48-59: outer lip contour (clockwise from the right corner), just inside the
    # vermilion border; 60-67: inner contour on the slit edges.
    hw = MOUTH_HALF_WIDTH
    m_up, m_low = mouth_rows
    corner_r, corner_l = on_row(m_up, -hw), on_row(m_up, hw)
    upper_x = (-0.17, -0.07, 0.0, 0.07, 0.17)
    ids += (
        [corner_r]
        + [nearest(x, MOUTH_Y - 0.65 * upper_lip_height(x)) for x in upper_x]
        + [corner_l]
    )
    lower_x = (0.15, 0.07, 0.0, -0.07, -0.15)
    ids += [nearest(x, MOUTH_Y + 0.65 * lower_lip_height(x)) for x in lower_x]
    ids += (
        [on_row(m_up, -hw + 0.03)]
        + [on_row(m_up, x) for x in (-0.1, 0.0, 0.1)]
        + [on_row(m_up, hw - 0.03)]
    )
    ids += [on_row(m_low, x) for x in (0.1, 0.0, -0.1)]
    assert len(ids) == 68
    return np.array(ids, np.int64)


def upper_lip_height(x):
    """Height of the upper vermilion above the mouth line (with a cupid's bow)."""
    base = 0.07 * np.clip(1 - (x / (MOUTH_HALF_WIDTH + 0.01)) ** 2, 0, 1) ** 0.5
    return base - 0.012 * gaussian(x / 0.03) + 0.006 * gaussian((np.abs(x) - 0.055) / 0.03)


def lower_lip_height(x):
    return 0.075 * np.clip(1 - (x / (MOUTH_HALF_WIDTH - 0.01)) ** 2, 0, 1) ** 0.6


# --------------------------------------------------------------------------- identity


def identity_basis(verts, parts, mouth_side, eye_side, front):
    """Displacement fields [K,N,3] for the identity parameters in IDENTITY_NAMES.

    Each field is a smooth warp of a facial region per unit parameter; subjects draw
    parameters ~ N(0, 1) clipped to [-2, 2]. Interior parts (eyeballs, teeth, cavity)
    follow the in-plane (x, y) part of each warp so they stay behind their openings.
    """
    x, y, z = verts.T
    ax, sx = np.abs(x), np.sign(x)
    zero = np.zeros_like(x)
    lower_face = smoothstep(0.1, 0.9, y) * front
    eye_region = gaussian((ax - EYE_X) / 0.22, (y - EYE_Y) / 0.2) * front
    mouth_region = gaussian(x / 0.4, (y - MOUTH_Y) / 0.2) * front
    fields = {
        "face_width": (0.06 * x, zero, zero),
        "face_length": (zero, 0.07 * np.maximum(y - EYE_Y, 0) * front, zero),
        "jaw_width": (0.1 * x * lower_face, zero, zero),
        "chin": (
            zero,
            0.04 * gaussian(x / 0.3, (y - CHIN_Y) / 0.2) * front,
            -0.03 * gaussian(x / 0.25, (y - CHIN_Y) / 0.15) * front,
        ),
        "nose_length": (zero, 0.03 * gaussian(x / 0.2, (y - NOSE_TIP_Y) / 0.12) * front, zero),
        "nose_width": (
            0.025 * sx * gaussian((ax - 0.1) / 0.08, (y - NOSE_TIP_Y) / 0.1) * front,
            zero,
            zero,
        ),
        "nose_depth": (zero, zero, -0.04 * gaussian(x / 0.1, (y - 0.15) / 0.18) * front),
        "eye_spacing": (0.025 * sx * eye_region, zero, zero),
        "eye_size": (
            zero,
            0.012 * eye_side * gaussian((ax - EYE_X) / 0.12, (y - EYE_Y) / 0.08) * front,
            zero,
        ),
        "lip_fullness": (
            zero,
            0.25 * (y - MOUTH_Y) * gaussian(x / 0.22, (y - MOUTH_Y) / 0.1) * front,
            -0.02 * gaussian(x / 0.22, (y - MOUTH_Y) / 0.08) * front,
        ),
        "mouth_width": (0.05 * x * mouth_region, zero, zero),
        "brow_height": (zero, -0.03 * gaussian(x / 0.6, (y - BROW_Y) / 0.12) * front, zero),
        "cheek_fullness": (
            zero,
            zero,
            -0.04 * gaussian((ax - 0.45) / 0.18, (y - 0.3) / 0.2) * front,
        ),
        "forehead_slope": (zero, zero, 0.05 * smoothstep(-0.4, -1.0, y) * front),
    }
    interior = parts != SKIN
    basis = np.stack([np.stack(fields[name], -1) for name in IDENTITY_NAMES])
    basis[:, interior, 2] = 0.0
    basis[:, np.isin(parts, BODY_PARTS)] = 0.0
    return basis
