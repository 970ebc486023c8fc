"""Generated face crops pasted back into the source photo: the inverse of the crop
(frgan.data.crop), blended through a feathered mask so the crop's border leaves no seam.

Pure NumPy/OpenCV; frames are uint8 [T, H, W, 3].
"""

from __future__ import annotations

import cv2
import numpy as np

from frgan.data.crop import pixel_box


def feather_mask(side: int, feather: float) -> np.ndarray:
    """float32 [side, side] weights of a pasted crop: 1 inside, falling smoothly (smoothstep) to
    0 at the crop's edges over a border of `feather` times the side (0: 1 everywhere)."""
    if not 0.0 <= feather <= 0.5:
        raise ValueError(
            f"feather must be a fraction of the crop's side in [0, 0.5], got {feather}"
        )
    if side < 1:
        raise ValueError(f"the crop's side must be >= 1 pixel, got {side}")
    border = feather * side
    if border == 0:
        return np.ones((side, side), np.float32)
    centres = np.arange(side) + 0.5
    distance = np.minimum(centres, side - centres)  # from the nearest edge, per row or column
    ramp = np.clip(distance / border, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


def paste_back(photo: np.ndarray, crops: np.ndarray, box: np.ndarray, feather: float) -> np.ndarray:
    """Every crop [T, S, S, 3] resized to the crop box (cx, cy, side) it was cut from and
    blended into `photo` [H, W, 3] -> uint8 [T, H, W, 3]. Outside the box the photo is left
    exactly as it was; where the mask is 1 the frame is the resized crop."""
    if photo.ndim != 3 or crops.ndim != 4 or crops.shape[-1] != photo.shape[-1]:
        raise ValueError(
            f"need a photo [H,W,C] and crops [T,S,S,C], got {photo.shape}, {crops.shape}"
        )
    left, top, side = pixel_box(box)
    height, width = photo.shape[:2]
    # the part of the box inside the photo, in photo rows/columns and in box rows/columns
    rows = slice(max(top, 0), min(top + side, height))
    columns = slice(max(left, 0), min(left + side, width))
    inside = (
        slice(rows.start - top, rows.stop - top),
        slice(columns.start - left, columns.stop - left),
    )
    frames = np.repeat(photo[None], len(crops), axis=0)
    if rows.start >= rows.stop or columns.start >= columns.stop:
        return frames
    mask = feather_mask(side, feather)[inside][..., None]
    background = photo[rows, columns].astype(np.float32)
    interpolation = cv2.INTER_AREA if side < crops.shape[1] else cv2.INTER_LINEAR
    for frame, crop in zip(frames, crops, strict=True):
        face = cv2.resize(crop, (side, side), interpolation=interpolation)[inside]
        blended = background + mask * (face.astype(np.float32) - background)
        frame[rows, columns] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return frames
