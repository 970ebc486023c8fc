"""Retargeting geometry: Procrustes fits, expression displacement, transfer between faces."""

import numpy as np
import pytest

from frgan.data.retarget import (
    ANCHORS,
    align,
    apply_similarity,
    expression_displacement,
    retarget,
    similarity_transform,
)

MOUTH_AND_BROWS = np.r_[17:27, 48:68]  # no anchor among them


def random_rotation(rng, dims=3):
    q, r = np.linalg.qr(rng.normal(size=(dims, dims)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def small_rotation(rng, degrees=8.0):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-degrees, degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def make_take(rng, frames=6, head_motion=True):
    """A face [68, 3] whose mouth and brows move (anchors untouched), under a moving head pose."""
    face = rng.normal(scale=40.0, size=(68, 3)) + [64.0, 64.0, 0.0]
    expressions = np.zeros((frames, 68, 3))
    expressions[1:, MOUTH_AND_BROWS] = rng.normal(
        scale=3.0, size=(frames - 1, len(MOUTH_AND_BROWS), 3)
    )
    take = []
    for index in range(frames):
        shape = face + expressions[index]
        if head_motion and index > 0:
            centre = face.mean(axis=0)
            shape = (
                (shape - centre) @ small_rotation(rng).T * rng.uniform(0.9, 1.1)
                + centre
                + rng.normal(scale=4, size=3)
            )
        take.append(shape)
    return np.array(take), expressions


@pytest.mark.parametrize("dims", [2, 3])
def test_similarity_transform_recovers_a_known_transform(dims):
    rng = np.random.default_rng(dims)
    source = rng.normal(size=(68, dims))
    rotation, scale, translation = random_rotation(rng, dims), 1.7, rng.normal(size=dims)
    target = apply_similarity(source, scale, rotation, translation)
    fitted_scale, fitted_rotation, fitted_translation = similarity_transform(source, target)
    assert fitted_scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(fitted_translation, translation, atol=1e-9)
    np.testing.assert_allclose(align(source, target), target, atol=1e-9)


def test_similarity_transform_never_returns_a_reflection():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(20, 3))
    mirrored = source * [-1.0, 1.0, 1.0]
    _, rotation, _ = similarity_transform(source, mirrored)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_similarity_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="matching point sets"):
        similarity_transform(np.zeros((5, 3)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        similarity_transform(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_expression_displacement_removes_head_motion():
    take, expressions = make_take(np.random.default_rng(1))
    np.testing.assert_allclose(expression_displacement(take), expressions, atol=1e-8)


def test_a_face_driven_by_its_own_take_reproduces_it():
    take, _ = make_take(np.random.default_rng(2))
    reproduced = retarget(take, take[0], transfer_head_motion=True)
    np.testing.assert_allclose(reproduced, take, atol=1e-3)
    still_take, _ = make_take(np.random.default_rng(3), head_motion=False)
    np.testing.assert_allclose(retarget(still_take, still_take[0]), still_take, atol=1e-3)


def test_retarget_ignores_driver_scale_position_and_rotation():
    rng = np.random.default_rng(4)
    take, _ = make_take(rng)
    target = make_take(rng, frames=2)[0][0]
    moved_driver = apply_similarity(take, 0.37, random_rotation(rng), [300.0, -20.0, 5.0])
    for transfer_head_motion in (False, True):
        expected = retarget(take, target, transfer_head_motion=transfer_head_motion)
        np.testing.assert_allclose(
            retarget(moved_driver, target, transfer_head_motion=transfer_head_motion),
            expected,
            atol=1e-3,
        )


def test_displacement_is_scaled_and_turned_to_the_target_face():
    rng = np.random.default_rng(5)
    take, expressions = make_take(rng, head_motion=False)
    rotation = random_rotation(rng)
    target = apply_similarity(take[0], 2.0, rotation, [10.0, 20.0, 30.0])
    result = retarget(take, target)
    np.testing.assert_allclose(result[0], target, atol=1e-3)
    np.testing.assert_allclose(result - target, 2.0 * expressions @ rotation.T, atol=1e-3)
    assert set(ANCHORS.tolist()).isdisjoint(MOUTH_AND_BROWS.tolist())


def test_frames_without_a_face_stay_nan_and_the_first_frame_must_have_one():
    take, _ = make_take(np.random.default_rng(6))
    take[2] = np.nan
    result = retarget(take, take[0], transfer_head_motion=True)
    assert np.isnan(result[2]).all() and np.isfinite(np.delete(result, 2, axis=0)).all()
    take[0] = np.nan
    with pytest.raises(ValueError, match="first frame"):
        retarget(take, take[1])
    with pytest.raises(ValueError, match="target_neutral"):
        retarget(take[1:], np.zeros((5, 3)))
