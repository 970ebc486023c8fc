"""Face parts drawn over a structure map, so that expression shows in it distinctly.

A normal map of the face mesh shows the head's shape well but an expression faintly: an open
mouth is a small dent, a closed eye or a lowered brow hardly shows. Drawn over it, from the 68
landmarks (both meshes give them):
    mouth cavity (inner lips 60-67)        black   (-1, -1, -1)
    lips (outer lips 48-59 less the cavity) red     ( 1, -1, -1)
    eye openings (lids 36-41, 42-47)       white   ( 1,  1,  1)
    brows (17-21, 22-26, 1 px lines)       blue    (-1, -1,  1)
Unit normals never reach these corners of the colour cube, so a part cannot be mistaken for
shape. Parts are anti-aliased (coverage from SUPERSAMPLE² samples per pixel): at 64 px a lid
opening is about two pixels high, and its coverage still tells a half-closed eye from an open one.
"""

from __future__ import annotations

import cv2
import numpy as np

SUPERSAMPLE = 4
_SHIFT = 4  # cv2 fixed-point bits: vertices at 1/16 of a supersampled pixel
PART_COLOURS = {
    "lips": (1.0, -1.0, -1.0),
    "cavity": (-1.0, -1.0, -1.0),
    "eyes": (1.0, 1.0, 1.0),
    "brows": (-1.0, -1.0, 1.0),
}
_LIPS, _CAVITY = list(range(48, 60)), list(range(60, 68))
_EYES = (list(range(36, 42)), list(range(42, 48)))
_BROWS = (list(range(17, 22)), list(range(22, 27)))


def _fixed(points: np.ndarray) -> np.ndarray:
    """Image (x, y), pixel centres at +0.5, as cv2 fixed-point coordinates of the supersampled grid."""
    return np.round((points * SUPERSAMPLE - 0.5) * (1 << _SHIFT)).astype(np.int32)


def part_coverage(points: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    """{part: float32 [H,W] in [0,1]} for one face's 68 points [68,≥2] (PART_COLOURS order)."""
    big = (height * SUPERSAMPLE, width * SUPERSAMPLE)
    xy = points[:, :2].astype(np.float64)
    layers = {name: np.zeros(big, np.uint8) for name in PART_COLOURS}
    cv2.fillPoly(layers["lips"], [_fixed(xy[_LIPS])], 255, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(layers["cavity"], [_fixed(xy[_CAVITY])], 255, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(layers["eyes"], [_fixed(xy[eye]) for eye in _EYES], 255, cv2.LINE_8, _SHIFT)
    cv2.polylines(
        layers["brows"], [_fixed(xy[brow]) for brow in _BROWS], False, 255, SUPERSAMPLE,
        cv2.LINE_8, _SHIFT,
    )  # fmt: skip
    layers["lips"][layers["cavity"] > 0] = 0
    return {
        name: layer.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).mean(axis=(1, 3)) / 255.0
        for name, layer in layers.items()
    }


def draw_parts(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Structure maps [N,3,H,W] with the parts of faces [N,68,≥2] drawn over them (a copy)."""
    out = np.array(maps, dtype=np.float32, copy=True)
    height, width = out.shape[-2:]
    for image, face in zip(out, points, strict=True):
        for name, alpha in part_coverage(face, height, width).items():
            colour = np.asarray(PART_COLOURS[name], np.float32)[:, None, None]
            image += alpha[None] * (colour - image)
    return out
