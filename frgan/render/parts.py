"""Face parts drawn over a structure map, so that expression shows in it distinctly.

A normal map of the face mesh shows the head's shape well but an expression faintly: an open
mouth is a small dent, a closed eye or a lowered brow hardly shows. Drawn over it, from the 68
landmarks (both meshes give them):
    mouth cavity (inner lips 60-67)        black   (-1, -1, -1)
    lips (outer lips 48-59 less the cavity) red     ( 1, -1, -1)
    eye openings (lids 36-41, 42-47)       white   ( 1,  1,  1)
    brows (17-21, 22-26, 1 px lines)       blue    (-1, -1,  1)
    teeth (with teeth=True)                yellow  ( 1,  1, -1)
Unit normals never reach these corners of the colour cube, so a part cannot be mistaken for
shape.

Teeth: landmarks do not show them, but anatomy places them. The upper teeth are fixed to the
skull, so their edge lies a fixed distance below the nose base (point 33); the lower teeth ride
on the jaw, which turns about its hinge, so their edge drops about 0.6 as far as the chin (point
8) does. Both distances are measured down the face in eye distances and written as lines in the
nose-to-chin distance (which carries the face's length and the jaw's drop). The part of the
mouth cavity above the upper edge is upper teeth, the part below the lower edge lower teeth,
the rest stays dark cavity: a smile's narrow opening shows the upper teeth, a dropped jaw opens
a dark gap between thin rows. The lines' coefficients (TEETH_EDGES) were fitted to where the
synthetic renderer shows teeth (scripts/fit_teeth_edges.py measures them again).

Parts are anti-aliased (coverage from SUPERSAMPLE² samples per pixel): at 64 px a lid
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
    "teeth": (1.0, 1.0, -1.0),
}
_LIPS, _CAVITY = list(range(48, 60)), list(range(60, 68))
_EYES = (list(range(36, 42)), list(range(42, 48)))
_BROWS = (list(range(17, 22)), list(range(22, 27)))
_NOSE_BASE, _CHIN = 33, 8


def _face_axes(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """(down, eye distance): the unit vector down the face (across the eye line) and the
    distance between the eye centres."""
    along = xy[_EYES[1]].mean(0) - xy[_EYES[0]].mean(0)
    distance = float(np.linalg.norm(along))
    return np.array([-along[1], along[0]]) / max(distance, 1e-6), distance


# edge below the nose base = intercept + slope * (chin below the nose base), in eye distances
TEETH_EDGES = {"upper": (0.400, 0.025), "lower": (0.040, 0.450)}


def _fixed(points: np.ndarray) -> np.ndarray:
    """Image (x, y), pixel centres at +0.5, as cv2 fixed-point coordinates of the supersampled grid."""
    return np.round((points * SUPERSAMPLE - 0.5) * (1 << _SHIFT)).astype(np.int32)


def below_nose(xy: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, float]:
    """(how far points [N,2] lie below the nose base, how far the chin does), in eye distances
    down the face of landmarks xy [68,2]: the coordinates the teeth edges are lines in."""
    down, distance = _face_axes(xy)
    nose = xy[_NOSE_BASE]
    return (points - nose) @ down / distance, (xy[_CHIN] - nose) @ down / distance


def is_teeth(
    below: np.ndarray, chin: float | np.ndarray, edges: dict[str, tuple] = TEETH_EDGES
) -> np.ndarray:
    """Which cavity points, `below` the nose base (below_nose) of a face whose chin is `chin`
    below it, are teeth by `edges` (TEETH_EDGES)."""
    (a_upper, b_upper), (a_lower, b_lower) = edges["upper"], edges["lower"]
    return (below < a_upper + b_upper * chin) | (below > a_lower + b_lower * chin)


def teeth_layer(xy: np.ndarray, cavity: np.ndarray) -> np.ndarray:
    """uint8 [h,w] (0 or 255): the pixels of the supersampled cavity layer that are teeth."""
    rows, cols = np.nonzero(cavity)  # only the cavity can show teeth
    # supersampled pixel centres in image pixels (centres at +0.5)
    pixels = np.stack([cols + 0.5, rows + 0.5], axis=-1) / SUPERSAMPLE
    teeth = np.zeros_like(cavity)
    teeth[rows, cols] = np.where(is_teeth(*below_nose(xy, pixels)), 255, 0)
    return teeth


def part_layers(
    points: np.ndarray, height: int, width: int, teeth: bool = False
) -> dict[str, np.ndarray]:
    """{part: uint8 [H·SUPERSAMPLE, W·SUPERSAMPLE], 0 or 255}: the parts of one face's 68
    points [68,≥2] drawn on the supersampled grid (PART_COLOURS order; "teeth" only with
    teeth=True, cut out of the cavity)."""
    big = (height * SUPERSAMPLE, width * SUPERSAMPLE)
    xy = points[:, :2].astype(np.float64)
    names = [name for name in PART_COLOURS if teeth or name != "teeth"]
    layers = {name: np.zeros(big, np.uint8) for name in names}
    cv2.fillPoly(layers["lips"], [_fixed(xy[_LIPS])], 255, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(layers["cavity"], [_fixed(xy[_CAVITY])], 255, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(layers["eyes"], [_fixed(xy[eye]) for eye in _EYES], 255, cv2.LINE_8, _SHIFT)
    cv2.polylines(
        layers["brows"], [_fixed(xy[brow]) for brow in _BROWS], False, 255, SUPERSAMPLE,
        cv2.LINE_8, _SHIFT,
    )  # fmt: skip
    layers["lips"][layers["cavity"] > 0] = 0
    if teeth:
        layers["teeth"] = teeth_layer(xy, layers["cavity"])
        layers["cavity"][layers["teeth"] > 0] = 0
    return layers


def subsample_coverage(layer: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [H,W] in [0,1]: the share of each pixel's SUPERSAMPLE² samples that a layer of
    part_layers covers."""
    blocks = layer.astype(np.float32).reshape(height, SUPERSAMPLE, width, SUPERSAMPLE)
    # numpy reduces a short axis slowly, so its slices are added instead (6x faster than
    # .mean(axis=(1, 3)), scripts/bench_geometry.py); plain numpy, which starts no thread pool
    # in the DataLoader workers (cv2.resize's INTER_AREA, as fast, would)
    columns = sum(blocks[..., i] for i in range(SUPERSAMPLE))
    return sum(columns[:, i] for i in range(SUPERSAMPLE)) / (255.0 * SUPERSAMPLE**2)


def part_coverage(
    points: np.ndarray, height: int, width: int, teeth: bool = False
) -> dict[str, np.ndarray]:
    """{part: float32 [H,W] in [0,1]} for one face's 68 points [68,≥2] (PART_COLOURS order;
    "teeth" only with teeth=True, cut out of the cavity)."""
    return {
        name: subsample_coverage(layer, height, width)
        for name, layer in part_layers(points, height, width, teeth).items()
    }


def draw_parts(maps: np.ndarray, points: np.ndarray, teeth: bool = False) -> np.ndarray:
    """Structure maps [N,3,H,W] with the parts of faces [N,68,≥2] drawn over them (a copy);
    teeth=True also draws the teeth the cavity shows."""
    out = np.array(maps, dtype=np.float32, copy=True)
    height, width = out.shape[-2:]
    for image, face in zip(out, points, strict=True):
        for name, alpha in part_coverage(face, height, width, teeth).items():
            colour = np.asarray(PART_COLOURS[name], np.float32)[:, None, None]
            image += alpha[None] * (colour - image)
    return out
