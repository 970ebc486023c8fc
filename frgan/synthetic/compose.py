"""Posing and rendering a take: project the head, rasterize it with the project's renderer,
texture and light the pixels in NumPy, composite over the background."""

import cv2
import numpy as np

from frgan.render import interpolate, rasterize, vertex_normals
from frgan.synthetic.appearance import LABEL, TEXELS_PER_CELL, SubjectAppearance, TakeLighting
from frgan.synthetic.head import (
    EYEBALL,
    LOWER_TEETH,
    MOUTH_CAVITY,
    NECK,
    SKIN,
    TONGUE,
    TORSO,
    UPPER_TEETH,
    HeadModel,
    smoothstep,
)

MOUTH_PARTS = (MOUTH_CAVITY, TONGUE, UPPER_TEETH, LOWER_TEETH)
HEAD_CENTRE_Y = 0.44  # image height fraction where the model origin lands

PART_LABELS = {
    EYEBALL: LABEL["eyeball"],
    MOUTH_CAVITY: LABEL["mouth_interior"],
    TONGUE: LABEL["mouth_interior"],
    UPPER_TEETH: LABEL["teeth"],
    LOWER_TEETH: LABEL["teeth"],
    NECK: LABEL["skin"],
    TORSO: LABEL["clothes"],
}


def rotation_matrices(yaw, pitch, roll) -> np.ndarray:
    """[T,3,3] rotations (roll about z after pitch about x after yaw about y)."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    r_yaw = np.stack(
        [
            np.stack([cy, zero, sy], -1),
            np.stack([zero, one, zero], -1),
            np.stack([-sy, zero, cy], -1),
        ],
        -2,
    )
    r_pitch = np.stack(
        [
            np.stack([one, zero, zero], -1),
            np.stack([zero, cp, -sp], -1),
            np.stack([zero, sp, cp], -1),
        ],
        -2,
    )
    r_roll = np.stack(
        [
            np.stack([cr, -sr, zero], -1),
            np.stack([sr, cr, zero], -1),
            np.stack([zero, zero, one], -1),
        ],
        -2,
    )
    return r_roll @ r_pitch @ r_yaw


def project(vertices: np.ndarray, pose: np.ndarray, image_size: int) -> np.ndarray:
    """Model-space vertices [T,N,3] -> image pixels + depth [T,N,3] (orthographic)."""
    rotations = rotation_matrices(pose[:, 0], pose[:, 1], pose[:, 2])
    posed = np.matmul(vertices, rotations.transpose(0, 2, 1)) * pose[:, None, 5:6]
    centre = np.stack(
        [image_size / 2 + pose[:, 3], HEAD_CENTRE_Y * image_size + pose[:, 4], np.zeros(len(pose))],
        -1,
    )
    return posed + centre[:, None]


def sample_texture(texture: np.ndarray, xy: np.ndarray, interpolation: int) -> np.ndarray:
    """Look up texels at float coordinates xy [K,2]; returns [K] or [K,C]."""
    width = 1024  # cv2.remap maps must stay below 32767 rows, so fold the K lookups
    padded = np.zeros((-(-len(xy) // width) * width, 2), np.float32)
    padded[: len(xy)] = xy
    grid = padded.reshape(-1, width, 2)
    values = cv2.remap(
        texture, grid[..., 0], grid[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
    )
    return values.reshape((-1,) + texture.shape[2:])[: len(xy)]


def vertex_albedo(head: HeadModel, appearance: SubjectAppearance) -> np.ndarray:
    """Per-vertex colour [N,3] for the parts that are not textured."""
    colours = {
        MOUTH_CAVITY: [0.28, 0.06, 0.07],
        TONGUE: [0.72, 0.32, 0.33],
        UPPER_TEETH: [0.93, 0.91, 0.84],
        LOWER_TEETH: [0.9, 0.88, 0.8],
        EYEBALL: [0.95, 0.93, 0.9],
        TORSO: appearance.clothes,
    }
    albedo = np.tile(appearance.skin * 0.93, (head.num_vertices, 1))
    for part, colour in colours.items():
        albedo[head.part == part] = colour
    return albedo


def _eye_colour(uv, gaze, appearance: SubjectAppearance, pupil: float):
    """Sclera, iris and pupil from the eyeball disc coordinates [K,2] and gaze [K,2]."""
    radial = np.hypot(uv[:, 0], uv[:, 1])
    offset = uv - gaze
    distance = np.hypot(offset[:, 0], offset[:, 1])
    angle = np.arctan2(offset[:, 1], offset[:, 0])
    sclera = np.array([0.95, 0.93, 0.9]) * (1 - 0.25 * smoothstep(0.4, 0.95, radial))[:, None]
    streaks = 0.8 + 0.2 * np.cos(17 * angle) * np.cos(5 * angle + 1.0)
    iris = appearance.iris[None] * (streaks * (1 - 0.5 * smoothstep(0.26, 0.38, distance)))[:, None]
    colour = np.where((distance < 0.38)[:, None], iris, sclera)
    return np.where((distance < pupil)[:, None], 0.02, colour)


def _teeth_colour(uv, part, base):
    """Gaps between teeth and darker edges, from the patch coordinates (model x, y)."""
    width = 0.05 + 0.02 * np.abs(uv[:, 0]) / 0.25
    phase = np.abs(np.mod(uv[:, 0] / width + 0.5, 1.0) - 0.5)
    gaps = 1 - 0.45 * smoothstep(0.38, 0.5, phase) * np.isin(part, (UPPER_TEETH, LOWER_TEETH))
    return base * gaps[:, None]


def render_frames(
    head: HeadModel,
    posed: np.ndarray,
    texture: np.ndarray,
    texture_labels: np.ndarray,
    appearance: SubjectAppearance,
    lighting: TakeLighting,
    background: np.ndarray,
    gaze: np.ndarray,
    *,
    with_labels: bool = False,
):
    """Render posed vertices [T,N,3] into uint8 images [T,S,S,3] (+ uint8 labels [T,S,S])."""
    frames, size = len(posed), background.shape[0]
    face_index, bary, _ = rasterize(posed, head.faces, size, size)
    normals = vertex_normals(posed, head.faces)
    static = np.concatenate([head.uv, head.part[:, None], vertex_albedo(head, appearance)], 1)
    covered = face_index >= 0
    values = interpolate(static, head.faces, face_index, bary)[covered]  # [K,6] covered pixels
    normal = interpolate(normals, head.faces, face_index, bary)[covered]  # [K,3]
    uv, part, colour = values[:, :2], np.rint(values[:, 2]).astype(np.int8), values[:, 3:6]

    skin = part == SKIN
    k = TEXELS_PER_CELL
    texel_xy = uv[skin] * k
    colour[skin] = sample_texture(texture, texel_xy, cv2.INTER_LINEAR)
    eye = part == EYEBALL
    frame_of_pixel = np.nonzero(covered)[0]
    colour[eye] = _eye_colour(uv[eye], gaze[frame_of_pixel[eye]], appearance, lighting.pupil)
    colour = _teeth_colour(uv, part, colour)

    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    light = lighting.direction.astype(np.float32)
    lambert = np.clip(normal @ light, 0, None)
    half = light + np.array([0.0, 0.0, -1.0], np.float32)
    half /= np.linalg.norm(half)
    gloss = np.clip(normal @ half, 0, None)
    shininess = np.where(eye, np.float32(80), np.float32(12))
    strength = np.where(eye, np.float32(0.6), np.float32(lighting.specular))
    occlusion = np.where(np.isin(part, MOUTH_PARTS), np.float32(0.6), np.float32(1))
    occlusion[part == NECK] = 0.8
    shade = (lighting.ambient + lighting.diffuse * lambert) * occlusion
    lit = (
        colour * shade[:, None] * lighting.colour[None].astype(np.float32)
        + (strength * gloss**shininess)[:, None]
    )

    images = np.broadcast_to(background, (frames,) + background.shape).copy()
    images[covered] = lit
    images = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
    if not with_labels:
        return images
    labels = np.zeros(covered.shape, np.uint8)
    pixel_labels = np.zeros(len(part), np.uint8)
    pixel_labels[skin] = sample_texture(texture_labels, texel_xy, cv2.INTER_NEAREST)
    for part_id, label in PART_LABELS.items():
        pixel_labels[part == part_id] = label
    labels[covered] = pixel_labels
    return images, labels
