import math

import numpy as np
import pytest
import torch
from conftest import load_script

from frgan import metrics
from frgan.metrics import registry


def _images(seed: int = 0, shape=(2, 3, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identical_images_are_perfect():
    x = _images()
    assert torch.isinf(metrics.psnr(x, x)).all()
    torch.testing.assert_close(metrics.ssim(x, x), torch.ones(2))


def test_psnr_of_a_known_error():
    target = torch.zeros(1, 3, 16, 16)
    pred = target + 0.1  # MSE 0.01 over a range of 2: 10*log10(4 / 0.01)
    torch.testing.assert_close(metrics.psnr(pred, target), torch.tensor([10 * math.log10(400.0)]))


def test_masked_metrics_only_see_the_mask():
    target = torch.zeros(1, 3, 16, 16)
    pred = target.clone()
    pred[..., :8, :] = 0.5  # error in the top half only
    top = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    top[..., :8, :] = True
    torch.testing.assert_close(
        metrics.psnr(pred, target, top), torch.tensor([10 * math.log10(4 / 0.25)])
    )
    assert torch.isinf(metrics.psnr(pred, target, ~top)).all()
    # the full frame averages both halves: MSE 0.125
    torch.testing.assert_close(
        metrics.psnr(pred, target), torch.tensor([10 * math.log10(4 / 0.125)])
    )
    assert metrics.ssim(pred, target, ~top) > metrics.ssim(pred, target, top)


def test_empty_mask_gives_nan():
    x = _images()
    empty = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    assert torch.isnan(metrics.psnr(x, -x, empty)).all()
    assert torch.isnan(metrics.ssim(x, -x, empty)).all()


def test_moving_mask_thresholds_the_largest_channel_change():
    x0 = torch.zeros(1, 3, 4, 4)
    xt = x0.clone()
    xt[0, 2, 1, 1] = 0.5  # one channel of one pixel moves
    xt[0, 0, 2, 2] = 0.05  # below the default threshold (0.1)
    mask = metrics.moving_mask(x0, xt)
    assert mask.shape == (1, 1, 4, 4)
    assert mask.sum() == 1 and mask[0, 0, 1, 1]
    assert metrics.moving_mask(x0, xt, threshold=0.01).sum() == 2


def test_rim_is_the_still_ring_around_the_moving_region():
    moving = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    moving[0, 0, 4, 4] = True
    rim = metrics.rim_mask(moving, width=1)
    assert rim.sum() == 8 and not rim[0, 0, 4, 4]  # the 8 neighbours, not the pixel itself
    assert rim[0, 0, 3:6, 3:6].sum() == 8
    assert metrics.rim_mask(moving, width=3).sum() == 7 * 7 - 1


def test_rim_error_sees_a_halo_that_the_moving_region_metrics_miss():
    """A head outline shifts one pixel; a forecast that gets the moving pixels right but
    tints the still background around them has a rim error and a perfect moving PSNR."""
    x0 = torch.full((1, 3, 16, 16), -0.5)
    x0[..., 4:12, 4:12] = 0.5
    xt = torch.roll(x0, 1, dims=-1)
    moving = metrics.moving_mask(x0, xt)
    halo = xt + 0.2 * metrics.rim_mask(moving)
    quality = metrics.frame_quality(halo, xt, x0)
    assert torch.isinf(quality["psnr_moving"]).all()
    torch.testing.assert_close(quality["rim_error"], torch.tensor([0.2]))
    assert set(quality) == set(registry.keys(registry.FRAME))
    assert metrics.frame_quality(x0, xt, x0)["rim_error"] == 0  # copying: nothing still changed
    assert metrics.frame_quality(xt, xt, xt)["rim_error"].isnan().all()  # no motion: NaN


def test_ssim_matches_scikit_image_away_from_the_border():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    x, y = _images(1, (1, 3, 32, 32)), _images(2, (1, 3, 32, 32))
    y = 0.7 * x + 0.3 * y  # correlated, so SSIM is far from 0
    ours = metrics.ssim_map(x, y)[0].numpy()  # [3,H,W]
    _, theirs = skimage_metrics.structural_similarity(
        x[0].numpy(),
        y[0].numpy(),
        data_range=2.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    interior = (slice(None), slice(5, -5), slice(5, -5))  # where border padding plays no role
    np.testing.assert_allclose(ours[interior], theirs[interior], atol=1e-4)


def test_temporal_error_and_flicker():
    torch.manual_seed(0)
    target = torch.rand(2, 5, 3, 8, 8) * 2 - 1
    assert torch.allclose(metrics.temporal_error(target, target), torch.zeros(2))
    # a constant offset changes no frame-to-frame difference
    assert torch.allclose(metrics.temporal_error(target + 0.1, target), torch.zeros(2), atol=1e-6)
    still = target[:, :1].expand_as(target)
    noisy = still + 0.2 * torch.randn_like(still)
    # on a clip that never changes every pixel is static: flicker = temporal error > 0
    assert torch.allclose(metrics.flicker(noisy, still), metrics.temporal_error(noisy, still))
    assert (metrics.flicker(noisy, still) > 0).all()
    # copying the first frame never flickers: where the truth is static, so is the copy
    moving_corner = still.clone()
    moving_corner[:, 1:, :, :4, :4] += 0.5
    assert torch.equal(metrics.flicker(still, moving_corner), torch.zeros(2))
    # no static pixel at all: undefined
    jumping = torch.where(torch.arange(5).view(1, 5, 1, 1, 1) % 2 == 0, -1.0, 1.0).expand_as(still)
    assert metrics.flicker(still, jumping).isnan().all()
    with pytest.raises(ValueError, match="T >= 2"):
        metrics.temporal_error(target[:, :1], target[:, :1])


def test_region_masks_cover_mouth_eyes_and_rest_disjointly():
    from frgan.metrics.regions import REGIONS, polygon_mask, region_masks
    from frgan.render.face68 import mean_face68

    square = torch.tensor([[[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]]])
    inside = polygon_mask(square, 8, 8)[0, 0]
    assert inside[2, 2] and inside[4, 4] and not inside[5, 5] and not inside[1, 3]

    landmarks = torch.from_numpy(mean_face68(64, 64)).float()[None].repeat(2, 1, 1)
    masks = region_masks(landmarks, 64)
    assert tuple(masks) == REGIONS
    stacked = torch.stack([masks[r].float() for r in REGIONS])
    assert stacked.sum(0).max() == 1  # no pixel in two regions
    mouth_rows = masks["mouth"][0, 0].nonzero()[:, 0]
    eye_rows = masks["eyes_brows"][0, 0].nonzero()[:, 0]
    assert eye_rows.float().mean() < mouth_rows.float().mean()  # eyes above the mouth
    lips = landmarks[0, 48:60]
    assert mouth_rows.min() <= lips[:, 1].min() and mouth_rows.max() >= lips[:, 1].max()
    with pytest.raises(ValueError, match="68-point"):
        region_masks(landmarks[:, :60], 64)


def test_polygon_mask_agrees_with_testing_every_pixel_against_every_edge():
    """The row-by-row crossing count is the even-odd rule of the plain per-pixel test (the
    benchmark's): on random polygons, self-crossing, partly off the frame, with vertices on
    pixel centres and horizontal edges."""
    from frgan.metrics.regions import polygon_mask

    per_pixel = load_script("bench_geometry").per_pixel_polygon_mask
    generator = torch.Generator().manual_seed(0)
    for trial in range(60):
        corners = int(torch.randint(3, 30, (), generator=generator))
        polygon = torch.rand(8, corners, 2, generator=generator) * 60 - 6
        if trial % 3 == 0:  # vertices on pixel centres and grid lines, horizontal edges
            polygon = polygon.round() + 0.5 * (trial % 2)
        assert torch.equal(polygon_mask(polygon, 40, 48), per_pixel(polygon, 40, 48))


def test_luminance_weighs_the_channels_as_rec_601_and_keeps_leading_dimensions():
    from frgan.metrics.image import luminance

    images = -torch.ones(2, 5, 3, 4, 4)  # black
    images[0, 0] = 1.0  # white
    images[1, 0, 1] = 1.0  # pure green
    luma = luminance(images)
    assert luma.shape == (2, 5, 4, 4)
    assert torch.allclose(luma[0, 0], torch.ones(4, 4))
    assert torch.allclose(luma[1, 0], torch.full((4, 4), 0.587))
    assert torch.equal(luma[0, 1], torch.zeros(4, 4))


def test_the_mouth_opening_is_between_the_inner_lips_and_empty_when_they_meet():
    from frgan.metrics.regions import mouth_opening_mask, region_masks
    from frgan.render.face68 import mean_face68

    closed = torch.from_numpy(mean_face68(64, 64)).float()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]  # the lower inner lip on the upper one
    opened = closed.clone()
    opened[65:68, 1] += 4.0  # the lower inner lip drops by 4 px
    landmarks = torch.stack([closed, opened])
    opening = mouth_opening_mask(landmarks, 64, 64)
    assert opening.shape == (2, 1, 64, 64)
    assert not opening[0].any()
    rows = opening[1, 0].nonzero()[:, 0]
    inner = opened[60:68]
    assert rows.min() >= inner[:, 1].min() - 1.5 and rows.max() <= inner[:, 1].max() + 1.5
    centre = opened[[62, 66]].mean(0)  # between the middle points of the inner lips
    assert opening[1, 0, int(centre[1]), int(centre[0])]
    assert (opening[1] <= region_masks(landmarks, 64)["mouth"][1]).all()  # inside the lips


def test_forecast_pairs_carry_the_68_points_their_maps_were_drawn_from(tmp_path):
    from frgan.data.datasets import ForecastPairs
    from frgan.data.shards import TakeSample
    from frgan.data.topology import structure_mesh
    from frgan.render.mesh468 import mean_mesh468

    landmarks = np.stack([mean_mesh468(32, 32), mean_mesh468(32, 32) + 1])
    take = TakeSample(
        key="s/e/t",
        frames=np.zeros((2, 32, 32, 3), np.uint8),
        landmarks=landmarks,
        meta={"subject": "s"},
    )
    pairs = ForecastPairs([take], render=lambda lm: np.zeros((len(lm), 3, 32, 32), np.float32))
    first, second = pairs.__getitems__([0, 1])
    subset = structure_mesh("mesh468").face68(landmarks)
    assert first["lt"].shape == (68, 2)
    assert torch.allclose(second["lt"], torch.from_numpy(subset[1, :, :2]))
    assert torch.allclose(second["l0"], torch.from_numpy(subset[0, :, :2]))
