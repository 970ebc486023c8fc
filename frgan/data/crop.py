"""Square face crops from 68 landmarks, as in the paper, and landmarks carried into the crop.

468-point landmarks (mesh468) are boxed by their 68-point subset, so a face is cropped the same
way whichever structure mesh it is prepared with.

A box is (cx, cy, side) in image pixels (pixel (i, j) has its centre at x=j+0.5, y=i+0.5).
The paper's box, from the landmarks' bounding box with half-side r = max(width, height) / 2:
the region of interest is a square of side sqrt(2) * 2r and the output crop is 0.95 of it,
both centred on the landmark box centre. The released code moved the crop's vertical centre
by a formula that depended on the face's position in the image (a bug); here the crop is
simply centred. By default one box per take, from its first frame (as in the paper);
`follow=True` follows the face with a box per frame, smoothed over time.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from frgan.data.errors import NoFaceFound
from frgan.data.topology import mesh_of

ROI_FACTOR = math.sqrt(2.0)
CROP_FACTOR = 0.95


def face_box(
    landmarks: np.ndarray, *, roi_factor: float = ROI_FACTOR, crop_factor: float = CROP_FACTOR
) -> np.ndarray:
    """The paper's crop box (cx, cy, side) float64 [3] of one face's landmarks [68 or 468, 2|3]."""
    points = np.asarray(landmarks, dtype=np.float64)
    points = mesh_of(points).face68(points)[:, :2]
    if not np.isfinite(points).all():
        raise NoFaceFound(
            "cannot place a crop box: the landmarks contain NaN (no face was found in that frame)"
        )
    low, high = points.min(axis=0), points.max(axis=0)
    half_side = (high - low).max() / 2.0
    if half_side <= 0:
        raise ValueError("cannot place a crop box: all landmarks are at one point")
    centre = (low + high) / 2.0
    return np.array([centre[0], centre[1], crop_factor * roi_factor * 2.0 * half_side])


def crop_boxes(
    landmarks: np.ndarray, *, follow: bool = False, smoothing_window: int = 9
) -> np.ndarray:
    """One crop box per frame, [T, 3] (cx, cy, side), from a take's landmarks [T, 68|468, 3].

    follow=False: every frame gets the box of the first frame (the paper); that frame must
    have a face. follow=True: each frame's own box, with frames without a face filled from
    their neighbours, then a centred moving average over `smoothing_window` frames (an odd
    count; 1 = no smoothing) of centre and side. Centred, so the box does not lag the face.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[0] == 0:
        raise ValueError(
            f"landmarks must be [T, 68 or 468, 2 or 3] with T >= 1, got shape {landmarks.shape}"
        )
    if not follow:
        try:
            box = face_box(landmarks[0])
        except NoFaceFound as error:
            raise NoFaceFound(f"no face in the first frame of the take: {error}") from error
        return np.repeat(box[None], len(landmarks), axis=0)
    if smoothing_window < 1 or smoothing_window % 2 == 0:
        raise ValueError(f"smoothing_window must be an odd number >= 1, got {smoothing_window}")
    found = np.isfinite(landmarks[..., :2]).all(axis=(1, 2))
    if not found.any():
        raise NoFaceFound("no face in any frame of the take: cannot place a crop box")
    boxes = np.full((len(landmarks), 3), np.nan)
    boxes[found] = [face_box(frame) for frame in landmarks[found]]
    frame_numbers = np.arange(len(landmarks))
    for column in range(
        3
    ):  # linear fill between faces, held constant before the first/after the last
        boxes[:, column] = np.interp(frame_numbers, frame_numbers[found], boxes[found, column])
    return moving_average(boxes, smoothing_window)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 of [T, C], edges padded by repeating the end values."""
    if window == 1:
        return values.copy()
    half = window // 2
    padded = np.concatenate(
        [np.repeat(values[:1], half, 0), values, np.repeat(values[-1:], half, 0)]
    )
    cumulative = np.cumsum(np.concatenate([np.zeros_like(values[:1]), padded]), axis=0)
    return (cumulative[window:] - cumulative[:-window]) / window


def pixel_box(box: np.ndarray) -> tuple[int, int, int]:
    """The box snapped to whole pixels: (left column, top row, side in pixels >= 1).

    Crops and landmark transforms both use this snapped box, so they agree exactly.
    """
    cx, cy, side = (float(v) for v in box)
    side_px = max(1, round(side))
    return round(cx - side_px / 2.0), round(cy - side_px / 2.0), side_px


def crop_frame(
    frame: np.ndarray, box: np.ndarray, size: int, *, border: str = "edge"
) -> np.ndarray:
    """Cut `box` out of `frame` [H, W, C] and resize it to [size, size, C].

    Where the box leaves the image the crop is padded: border="edge" repeats the outermost
    pixels, "black" fills zeros. Downscaling averages pixel areas (no aliasing).
    """
    if border not in ("edge", "black"):
        raise ValueError(f"border must be 'edge' or 'black', got {border!r}")
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    left, top, side = pixel_box(box)
    height, width = frame.shape[:2]
    pad_left, pad_top = max(0, -left), max(0, -top)
    pad_right, pad_bottom = max(0, left + side - width), max(0, top + side - height)
    if max(pad_left, pad_top, pad_right, pad_bottom) > 0:
        mode = cv2.BORDER_REPLICATE if border == "edge" else cv2.BORDER_CONSTANT
        frame = cv2.copyMakeBorder(frame, pad_top, pad_bottom, pad_left, pad_right, mode, value=0)
        left, top = left + pad_left, top + pad_top
    window = frame[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interpolation)


def crop_frames(
    frames: np.ndarray, boxes: np.ndarray, size: int, *, border: str = "edge"
) -> np.ndarray:
    """crop_frame for each frame [T, H, W, C] with its box [T, 3] -> [T, size, size, C]."""
    if len(frames) != len(boxes):
        raise ValueError(f"got {len(frames)} frames but {len(boxes)} boxes")
    return np.stack(
        [
            crop_frame(frame, box, size, border=border)
            for frame, box in zip(frames, boxes, strict=True)
        ]
    )


def landmarks_to_crop(landmarks: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [T, P, 3] in image pixels -> the same points in the [size, size] crops.

    x, y are shifted to the box corner and scaled by size / side; z is scaled by the same
    factor (not shifted: depth has no image origin). NaN rows stay NaN.
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if len(landmarks) != len(boxes):
        raise ValueError(f"got landmarks for {len(landmarks)} frames but {len(boxes)} boxes")
    snapped = np.array(
        [pixel_box(box) for box in boxes], dtype=np.float32
    )  # [T, 3] left, top, side
    scale = (size / snapped[:, 2])[:, None, None]
    offset = np.zeros((len(boxes), 1, 3), dtype=np.float32)
    offset[:, 0, :2] = snapped[:, :2]
    return ((landmarks - offset) * scale).astype(np.float32)
