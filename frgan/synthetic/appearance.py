"""Appearance: per-subject skin/hair/eye colours and texture, per-take lighting and background.

None of this reaches the structure map (which is rendered from the 68 landmarks only), so a
model must carry it over from the source frame.

The skin texture lives in the head's grid space: texel (row, col) = grid row/column times
TEXELS_PER_CELL, so the per-vertex grid coordinates are the texture coordinates.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from frgan.synthetic.head import (
    BROW_Y,
    EYE_HALF_WIDTH,
    EYE_X,
    EYE_Y,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    NOSE_TIP_Y,
    HeadModel,
    gaussian,
    lower_lip_height,
    skull_surface,
    smoothstep,
    upper_lip_height,
)

TEXELS_PER_CELL = 3

# Region labels of rendered pixels (used by tests and previews).
LABELS = (
    "background",
    "skin",
    "hair",
    "brow",
    "eyelid",
    "eyeball",
    "lip",
    "mouth_interior",
    "teeth",
    "nostril",
    "clothes",
)
LABEL = {name: index for index, name in enumerate(LABELS)}

SKIN_TONES = np.array(
    [
        [0.97, 0.82, 0.72],
        [0.92, 0.72, 0.58],
        [0.80, 0.58, 0.43],
        [0.62, 0.42, 0.29],
        [0.42, 0.27, 0.18],
    ]
)
HAIR_COLOURS = np.array(
    [
        [0.08, 0.06, 0.05],
        [0.22, 0.14, 0.08],
        [0.42, 0.28, 0.15],
        [0.70, 0.55, 0.33],
        [0.55, 0.22, 0.10],
        [0.60, 0.60, 0.60],
    ]
)
IRIS_COLOURS = np.array(
    [
        [0.25, 0.14, 0.07],
        [0.40, 0.25, 0.12],
        [0.45, 0.40, 0.18],
        [0.28, 0.45, 0.30],
        [0.30, 0.48, 0.70],
        [0.50, 0.55, 0.58],
    ]
)
HAIR_STYLES = ("short", "fringe", "receding")


@dataclass(frozen=True)
class SubjectAppearance:
    skin: np.ndarray  # RGB in [0, 1]
    blush: float
    blotch: float  # low-frequency skin tone variation
    pores: float  # high-frequency skin detail
    freckles: float  # freckle density
    hair: np.ndarray
    hair_style: str
    hairline: float  # y of the front hairline
    hair_volume: float
    brow: np.ndarray
    brow_thickness: float
    brow_density: float
    lips: np.ndarray
    iris: np.ndarray
    clothes: np.ndarray
    texture_seed: int


def sample_subject_appearance(rng: np.random.Generator) -> SubjectAppearance:
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(np.floor(tone))
    skin = SKIN_TONES[low] + (tone - low) * (
        SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low]
    )
    skin = np.clip(skin * rng.uniform(0.95, 1.04, 3), 0, 1)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    brow = np.clip(np.minimum(hair, skin * 0.55) * rng.uniform(0.7, 1.0), 0, 1)
    lip_red = np.array([0.72, 0.32, 0.32]) * rng.uniform(0.8, 1.1)
    lips = np.clip(0.45 * skin + 0.55 * lip_red * skin.mean() / 0.7, 0, 1)
    style = HAIR_STYLES[rng.integers(len(HAIR_STYLES))]
    hairline = {"short": -0.72, "fringe": -0.5, "receding": -0.9}[style] + rng.uniform(-0.05, 0.05)
    return SubjectAppearance(
        skin=skin,
        blush=float(rng.uniform(0.0, 0.12)),
        blotch=float(rng.uniform(0.02, 0.08)),
        pores=float(rng.uniform(0.01, 0.05)),
        freckles=float(rng.choice([0.0, 0.0, rng.uniform(0.002, 0.02)])),
        hair=np.clip(hair, 0, 1),
        hair_style=style,
        hairline=float(hairline),
        hair_volume=float(rng.uniform(0.03, 0.1)),
        brow=brow,
        brow_thickness=float(rng.uniform(0.025, 0.045)),
        brow_density=float(rng.uniform(0.6, 1.0)),
        lips=lips,
        iris=np.clip(
            IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.85, 1.15, 3), 0, 1
        ),
        clothes=rng.uniform(0.05, 0.8, 3),
        texture_seed=int(rng.integers(2**31)),
    )


def value_noise(rng: np.random.Generator, shape, cells) -> np.ndarray:
    """Smooth noise in [-1, 1] of `shape`, with about `cells` (rows, cols) random values."""
    grid = rng.uniform(-1, 1, (max(cells[0], 2), max(cells[1], 2))).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _texel_positions(head: HeadModel):
    """Skull-surface (x, y), azimuth and fractional grid row of every texel."""
    k = TEXELS_PER_CELL
    rows = np.arange((len(head.row_theta) - 1) * k + 1) / k
    cols = np.arange((len(head.col_phi) - 1) * k + 1) / k
    theta = np.interp(rows, np.arange(len(head.row_theta)), head.row_theta)
    phi = np.interp(cols, np.arange(len(head.col_phi)), head.col_phi)
    phi, theta = np.meshgrid(phi, theta)
    x, y, _ = skull_surface(phi, theta)
    grid_row = np.broadcast_to(rows[:, None], x.shape)
    return x, y, phi, grid_row


def hair_mask(appearance: SubjectAppearance, y, phi) -> np.ndarray:
    """Soft hair coverage on the skull from the hairline (front) round to the nape."""
    side = -0.05 if appearance.hair_style != "receding" else -0.2
    line = appearance.hairline + (side - appearance.hairline) * smoothstep(0.55, 1.35, np.abs(phi))
    line = line + (0.75 - side) * smoothstep(1.95, 2.7, np.abs(phi))
    if appearance.hair_style == "fringe":
        line = line + 0.08 * np.cos(9 * phi) * (np.abs(phi) < 0.6)
    ear = gaussian((np.abs(phi) - 1.62) / 0.2, (y - 0.1) / 0.25)
    return smoothstep(0.02, -0.02, y - line) * (1 - ear)


def hair_displacement(head: HeadModel, appearance: SubjectAppearance) -> np.ndarray:
    """Outward offset [N,3] of the scalp where there is hair (volume of the hairdo)."""
    k = TEXELS_PER_CELL
    x, y, phi, _ = _texel_positions(head)
    mask = hair_mask(appearance, y, phi)
    u, v = head.uv[:, 0] * k, head.uv[:, 1] * k
    on_skin = head.part == 0
    coverage = np.zeros(head.num_vertices)
    coverage[on_skin] = mask[v[on_skin].round().astype(int), u[on_skin].round().astype(int)]
    outward = head.vertices - np.array([0.0, 0.1, 0.1])
    outward /= np.linalg.norm(outward, axis=1, keepdims=True) + 1e-9
    return outward * (appearance.hair_volume * coverage)[:, None]


def skin_texture(head: HeadModel, appearance: SubjectAppearance):
    """Albedo float32 [Ht,Wt,3] in [0, 1] and region labels uint8 [Ht,Wt] of the skin grid."""
    rng = np.random.default_rng(appearance.texture_seed)
    x, y, phi, grid_row = _texel_positions(head)
    shape = x.shape
    ax = np.abs(x)
    front = smoothstep(0.1, 0.6, np.cos(phi))
    labels = np.full(shape, LABEL["skin"], np.uint8)

    shading = 1.0 + appearance.blotch * value_noise(rng, shape, (10, 16))
    shading += appearance.pores * value_noise(rng, shape, (shape[0] // 2, shape[1] // 2))
    shading -= (
        0.08 * gaussian((ax - EYE_X) / 0.16, (y - EYE_Y - 0.02) / 0.09) * front
    )  # darker sockets
    freckle = (
        (rng.random(shape) < appearance.freckles) * gaussian(x / 0.5, (y - 0.15) / 0.3) * front
    )
    shading -= 0.25 * cv2.GaussianBlur(freckle.astype(np.float32), (3, 3), 0.7)
    albedo = appearance.skin[None, None] * shading[..., None]
    blush = appearance.blush * gaussian((ax - 0.42) / 0.16, (y - 0.32) / 0.14) * front
    blush += 0.5 * appearance.blush * gaussian(x / 0.08, (y - NOSE_TIP_Y) / 0.07) * front
    albedo += (blush * appearance.skin.mean())[..., None] * np.array([0.6, -0.25, -0.2])

    # Lips: vermilion between the mouth line and the (cupid's bow) border.
    mouth_row = head.mouth_rows[0]
    upper = grid_row <= mouth_row
    border = np.where(upper, MOUTH_Y - upper_lip_height(x), MOUTH_Y + lower_lip_height(x))
    inside = np.where(upper, y - border, border - y)
    lip = smoothstep(-0.006, 0.008, inside) * (ax < MOUTH_HALF_WIDTH + 0.03) * front
    inner = gaussian((y - MOUTH_Y) / 0.02)
    lip_colour = appearance.lips[None, None] * (1 - 0.25 * inner[..., None])
    albedo = albedo * (1 - lip[..., None]) + lip_colour * lip[..., None]
    labels[lip > 0.5] = LABEL["lip"]
    commissure = (
        (np.abs(grid_row - mouth_row - 0.5) < 1.5) & (ax < MOUTH_HALF_WIDTH + 0.03) & (front > 0.5)
    )
    labels[commissure] = LABEL["lip"]

    # Brows: arched bands of hair-like streaks.
    centre = BROW_Y + 0.015 - 0.05 * np.sin(np.pi * np.clip(ax - 0.1, 0, 0.55) / 0.55)
    along = np.clip((ax - 0.08) / 0.58, 0, 1)
    thickness = appearance.brow_thickness * (1.1 - 0.6 * along)
    streaks = 0.5 + 0.5 * value_noise(rng, shape, (shape[0] // 2, shape[1] // 10))
    brow = smoothstep(thickness, 0.4 * thickness, np.abs(y - centre)) * (ax > 0.07) * (ax < 0.68)
    brow = np.clip(brow * (appearance.brow_density + 0.5 * streaks - 0.25), 0, 1) * front
    albedo = albedo * (1 - brow[..., None]) + appearance.brow[None, None] * brow[..., None]
    labels[brow > 0.4] = LABEL["brow"]

    # Eyelids: lash line along the upper lid edge, a soft crease above, label band.
    eye_upper_row = head.eye_rows[0]
    in_eye = (np.abs(ax - EYE_X) < EYE_HALF_WIDTH + 0.02) * front
    lash = smoothstep(1.3, 0.2, eye_upper_row - grid_row) * (grid_row <= eye_upper_row) * in_eye
    albedo *= 1 - 0.85 * lash[..., None]
    lower_lash = (
        smoothstep(1.0, 0.0, grid_row - eye_upper_row - 1) * (grid_row > eye_upper_row) * in_eye
    )
    albedo *= 1 - 0.35 * lower_lash[..., None]
    near_eye = (np.abs(ax - EYE_X) < EYE_HALF_WIDTH + 0.05) & (front > 0.5)
    lid_band = (np.abs(grid_row - eye_upper_row - 0.5) < 2.5) & near_eye
    labels[lid_band] = LABEL["eyelid"]

    # Nostrils: dark spots under the nose tip.
    nostril = gaussian((ax - 0.05) / 0.028, (y - NOSE_TIP_Y - 0.045) / 0.016) * front
    albedo *= 1 - 0.8 * nostril[..., None]
    labels[nostril > 0.5] = LABEL["nostril"]

    # Hair with strands running along the grid rows' perpendicular (top to bottom).
    hair = hair_mask(appearance, y, phi)
    strands = value_noise(rng, shape, (shape[0] // 8, shape[1] // 2))
    hair_colour = appearance.hair[None, None] * (1 + 0.25 * strands[..., None])
    albedo = albedo * (1 - hair[..., None]) + hair_colour * hair[..., None]
    labels[hair > 0.5] = LABEL["hair"]
    return np.clip(albedo, 0, 1).astype(np.float32), labels


@dataclass(frozen=True)
class TakeLighting:
    direction: np.ndarray  # unit vector from the surface towards the light (camera space)
    ambient: float
    diffuse: float
    specular: float
    colour: np.ndarray  # RGB multiplier of the light
    background_top: np.ndarray
    background_bottom: np.ndarray
    background_seed: int
    pupil: float  # pupil radius (fraction of the eyeball disc)


def sample_take_lighting(rng: np.random.Generator) -> TakeLighting:
    direction = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.6, 0.0), -1.0])
    warmth = rng.uniform(-1, 1)
    base = rng.uniform(0.15, 0.85, 3)
    return TakeLighting(
        direction=direction / np.linalg.norm(direction),
        ambient=float(rng.uniform(0.42, 0.55)),
        diffuse=float(rng.uniform(0.45, 0.65)),
        specular=float(rng.uniform(0.03, 0.1)),
        colour=1.0 + 0.06 * warmth * np.array([1.0, 0.1, -1.0]),
        background_top=np.clip(base * rng.uniform(0.8, 1.2, 3), 0, 1),
        background_bottom=np.clip(base * rng.uniform(0.5, 0.9, 3), 0, 1),
        background_seed=int(rng.integers(2**31)),
        pupil=float(rng.uniform(0.13, 0.2)),
    )


def background_image(lighting: TakeLighting, size: int) -> np.ndarray:
    """A vertical colour gradient with soft blotches: float32 [S,S,3]."""
    rng = np.random.default_rng(lighting.background_seed)
    t = np.linspace(0, 1, size)[:, None, None]
    image = lighting.background_top * (1 - t) + lighting.background_bottom * t
    image = image * (1 + 0.08 * value_noise(rng, (size, size), (4, 4))[..., None])
    return np.clip(np.broadcast_to(image, (size, size, 3)), 0, 1).astype(np.float32)
