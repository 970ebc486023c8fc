"""Face crop boxes, crops, and landmarks carried into crop coordinates."""

import math

import numpy as np
import pytest

from frgan.data.crop import (
    crop_boxes,
    crop_frame,
    crop_frames,
    face_box,
    landmarks_to_crop,
    pixel_box,
)
from frgan.data.errors import NoFaceFound


def square_face(cx, cy, half_width, half_height=None, z=0.0):
    """68 points spread over the box [cx ± half_width] x [cy ± half_height] (corners included)."""
    half_height = half_width if half_height is None else half_height
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(68, 2))
    points[:4] = [[-1, -1], [1, -1], [-1, 1], [1, 1]]
    points = points * [half_width, half_height] + [cx, cy]
    return np.concatenate([points, np.full((68, 1), z)], axis=1).astype(np.float32)


def coordinate_image(size=128):
    """uint8 image whose red channel is 2x and green channel 2y at each pixel centre."""
    centres = np.arange(size) + 0.5
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = np.floor(2 * centres)[None, :]
    image[..., 1] = np.floor(2 * centres)[:, None]
    return image


def test_face_box_follows_the_paper_without_the_vertical_offset():
    box = face_box(square_face(cx=40, cy=70, half_width=20, half_height=10))
    r = 20.0  # half of the larger side of the landmark box
    np.testing.assert_allclose(box, [40, 70, 0.95 * math.sqrt(2) * 2 * r], rtol=1e-6)


def test_one_box_per_take_from_the_first_frame_by_default():
    take = np.stack([square_face(40, 40, 15), square_face(60, 50, 25)])
    boxes = crop_boxes(take)
    np.testing.assert_allclose(boxes[0], face_box(take[0]))
    np.testing.assert_allclose(boxes[1], boxes[0])
    take[0] = np.nan
    with pytest.raises(NoFaceFound, match="first frame"):
        crop_boxes(take)


def test_landmarks_in_crop_coordinates_point_at_the_same_image_content():
    # A float image holding each pixel centre's own (x, y): resizing keeps it linear, so reading
    # the crop at a carried landmark must give back the landmark's image coordinates.
    centres = np.arange(128, dtype=np.float32) + 0.5
    image = np.stack(
        np.broadcast_arrays(centres[None, :], centres[:, None], np.float32(0)), axis=-1
    )
    landmarks = square_face(cx=60.3, cy=55.7, half_width=18, z=4.0)[None]
    for size in (32, 96):  # down- and upscaling
        boxes = crop_boxes(landmarks)
        crop = crop_frame(image, boxes[0], size)
        in_crop = landmarks_to_crop(landmarks, boxes, size)[0]
        read = np.array([bilinear(crop, x, y) for x, y in in_crop[:, :2]])
        np.testing.assert_allclose(
            read[:, :2], landmarks[0, :, :2], atol=0.1
        )  # INTER_AREA at 1.5x: ~0.08
        np.testing.assert_allclose(in_crop[:, 2], 4.0 * size / pixel_box(boxes[0])[2], rtol=1e-6)


def bilinear(image, x, y):
    """image value at continuous pixel coordinates (x, y), pixel centres at j + 0.5, i + 0.5."""
    column, row = x - 0.5, y - 0.5
    j, i = int(np.floor(column)), int(np.floor(row))
    a, b = column - j, row - i
    top = (1 - a) * image[i, j] + a * image[i, j + 1]
    bottom = (1 - a) * image[i + 1, j] + a * image[i + 1, j + 1]
    return (1 - b) * top + b * bottom


def test_box_partly_outside_the_image_is_padded():
    image = coordinate_image(64) + 1  # no zero pixel inside the image
    box = np.array([4.0, 60.0, 32.0])  # spills over the left and bottom edges
    black = crop_frame(image, box, 32, border="black")
    edge = crop_frame(image, box, 32, border="edge")
    left, top, side = pixel_box(box)
    assert (left, top, side) == (-12, 44, 32)
    assert (black[:, :12] == 0).all() and (black[20:] == 0).all()
    np.testing.assert_array_equal(black[:20, 12:], image[44:, :20])
    np.testing.assert_array_equal(edge[:20, 12:], image[44:, :20])
    np.testing.assert_array_equal(edge[:20, :12], np.repeat(image[44:, :1], 12, axis=1))
    np.testing.assert_array_equal(edge[20:], np.repeat(edge[19:20], 12, axis=0))
    with pytest.raises(ValueError, match="border"):
        crop_frame(image, box, 32, border="mirror")


def test_following_the_face_smooths_jitter_without_lag():
    rng = np.random.default_rng(0)
    frames = 40
    path = np.linspace(30, 70, frames)  # the face moves right at constant speed
    jitter = rng.normal(scale=2.0, size=frames)
    take = np.stack([square_face(x + j, 50, 15) for x, j in zip(path, jitter, strict=True)])
    raw = crop_boxes(take, follow=True, smoothing_window=1)
    smooth = crop_boxes(take, follow=True, smoothing_window=9)
    middle = slice(4, -4)
    raw_error = np.abs(raw[middle, 0] - path[middle]).mean()
    smooth_error = np.abs(smooth[middle, 0] - path[middle]).mean()
    assert smooth_error < 0.5 * raw_error
    steady = np.stack([square_face(x, 50, 15) for x in path])
    np.testing.assert_allclose(
        crop_boxes(steady, follow=True)[middle, 0], path[middle], atol=1e-4
    )  # no lag


def test_following_fills_frames_without_a_face_from_their_neighbours():
    take = np.stack([square_face(x, 50, 15) for x in (30.0, 40.0, 50.0, 60.0)])
    take[1] = np.nan
    boxes = crop_boxes(take, follow=True, smoothing_window=1)
    assert boxes[1, 0] == pytest.approx(40.0)
    take[:] = np.nan
    with pytest.raises(NoFaceFound, match="any frame"):
        crop_boxes(take, follow=True)
    with pytest.raises(ValueError, match="odd"):
        crop_boxes(np.stack([square_face(30, 30, 10)]), follow=True, smoothing_window=4)


def test_crop_frames_and_landmarks_keep_frames_and_nan_rows():
    frames = np.stack([coordinate_image(64)] * 3)
    take = np.stack([square_face(32, 32, 12)] * 3)
    take[2] = np.nan
    boxes = crop_boxes(take)
    assert crop_frames(frames, boxes, 16).shape == (3, 16, 16, 3)
    carried = landmarks_to_crop(take, boxes, 16)
    assert (
        carried.dtype == np.float32
        and np.isnan(carried[2]).all()
        and np.isfinite(carried[:2]).all()
    )
    with pytest.raises(ValueError, match="boxes"):
        crop_frames(frames[:2], boxes, 16)
