import pytest
import torch

from frgan.errors import ConfigError
from frgan.models import ForecastGAN
from frgan.models.losses import gradient_difference, structural_dissimilarity, weighted_l1

SIZE = 16


def test_change_weight_makes_the_pixels_the_target_changes_lead():
    source = torch.zeros(1, 3, 4, 4)
    target = source.clone()
    target[..., 1, 2] = 0.5  # one pixel changes by 0.5 in every channel
    frame = target + 0.1  # wrong by 0.1 everywhere
    assert torch.allclose(weighted_l1(frame, target, source), torch.tensor([0.1]))
    # 15 unchanged pixels weigh 1, the changed one 1 + 4 * 0.5 = 3
    expected = 0.1 * (15 + 3) / 16
    assert torch.allclose(weighted_l1(frame, target, source, 4.0), torch.tensor([expected]))


def test_opening_weight_makes_the_mouth_opening_lead():
    source = torch.zeros(2, 3, 4, 4)
    target = source.clone()
    frame = target + 0.1
    opening = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    opening[0, 0, 1:3, 1:3] = True  # the first target's mouth is open over 4 pixels
    # 12 pixels weigh 1, the 4 open ones 1 + 5; the closed mouth is plain L1
    expected = torch.tensor([0.1 * (12 + 4 * 6) / 16, 0.1])
    assert torch.allclose(weighted_l1(frame, target, source, 0.0, opening, 5.0), expected)
    # with the change weight the two add: the one changed pixel inside weighs 1 + 5 + 4 * 0.5
    target[0, :, 1, 1] = 0.5
    got = weighted_l1(target + 0.1, target, source, 4.0, opening, 5.0)
    assert torch.allclose(got[0], torch.tensor(0.1 * (12 + 3 * 6 + 8) / 16))


def test_gradient_difference_asks_for_the_truths_edges_not_its_level():
    target = torch.zeros(2, 1, 4, 4)
    target[..., 2:] = 1.0  # a vertical edge of height 1
    assert torch.equal(gradient_difference(target, target), torch.zeros(2))
    assert torch.allclose(gradient_difference(target + 0.3, target), torch.zeros(2))
    assert torch.allclose(gradient_difference(-target, target), torch.zeros(2))  # |∇| only
    blurred = target.clone()
    blurred[..., 1] = 0.5  # the edge spread over two steps of 0.5
    # along x each row has steps (0.5, 0.5, 0) against (0, 1, 0): mean 1/3; along y 0
    assert torch.allclose(gradient_difference(blurred, target), torch.full((2,), 1 / 6))


def test_structural_dissimilarity_asks_for_the_contrast_l1_cannot_tell_from_a_flat_band():
    rows = torch.arange(16).view(1, 1, 16, 1) % 2
    target = (rows - 0.5).expand(2, 3, 16, 16).clone()  # stripes ±0.5, like teeth and gaps
    flat = torch.zeros_like(target)  # their mean: what L1 settles for
    strong = 2 * target  # stripes ±1: as far from the truth in L1
    assert torch.allclose((flat - target).abs().mean(), (strong - target).abs().mean())
    assert torch.allclose(structural_dissimilarity(target, target), torch.zeros(2), atol=1e-6)
    assert (
        structural_dissimilarity(strong, target) < structural_dissimilarity(flat, target) / 3
    ).all()


def test_the_generator_loss_carries_the_terms_and_they_are_checked():
    torch.manual_seed(0)
    batch = {k: torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for k in ("x0", "s0", "xt", "st")}
    plain = ForecastGAN(preset="tiny", image_size=SIZE)
    model = ForecastGAN(
        preset="tiny", image_size=SIZE, change_weight=3.0, gradient_weight=5.0, ssim_weight=7.0
    )
    model.load_state_dict(plain.state_dict())
    inputs = model.generator_inputs(batch)
    output = model.run_generator(inputs, model.generator)
    loss, logged = model.generator_loss(inputs, output)
    plain_loss, plain_logged = plain.generator_loss(inputs, output)
    l1 = weighted_l1(output.frame, batch["xt"], batch["x0"], 3.0).mean()
    gdl = gradient_difference(output.frame, batch["xt"]).mean()
    dssim = structural_dissimilarity(output.frame, batch["xt"]).mean()
    assert torch.allclose(logged["l1"], l1)
    assert torch.allclose(logged["gradient_difference"], gdl)
    assert torch.allclose(logged["dssim"], dssim)
    assert not {"gradient_difference", "dssim"} & set(plain_logged)
    extra = model.hparams.l1_weight * (l1 - plain_logged["l1"]) + 5.0 * gdl + 7.0 * dssim
    expected = plain_loss + extra
    assert torch.allclose(loss, expected, rtol=1e-5)
    for key in ("change_weight", "gradient_weight", "opening_weight", "ssim_weight"):
        with pytest.raises(ConfigError, match=f"model.{key}"):
            ForecastGAN(preset="tiny", image_size=SIZE, **{key: -1.0})


def test_the_opening_weight_reads_the_targets_inner_lips():
    from frgan.metrics.regions import mouth_opening_mask
    from frgan.render.face68 import mean_face68

    torch.manual_seed(0)
    landmarks = torch.from_numpy(mean_face68(SIZE, SIZE)).float()[None].repeat(2, 1, 1)
    landmarks[:, [65, 66, 67]] = landmarks[:, [63, 62, 61]]  # closed mouths
    landmarks[1, 65:68, 1] += 3.0  # the second target's mouth is open
    batch = {k: torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for k in ("x0", "s0", "xt", "st")}
    model = ForecastGAN(preset="tiny", image_size=SIZE, opening_weight=20.0)
    with pytest.raises(
        ValueError, match="model.opening_weight needs .* set model.opening_weight=0"
    ):
        model.generator_inputs(batch)
    inputs = model.generator_inputs(batch | {"lt": landmarks})
    output = model.run_generator(inputs, model.generator)
    _, logged = model.generator_loss(inputs, output)
    opening = mouth_opening_mask(landmarks, SIZE, SIZE)
    assert opening[1].any() and not opening[0].any()
    expected = weighted_l1(output.frame, batch["xt"], batch["x0"], 0.0, opening, 20.0).mean()
    assert torch.allclose(logged["l1"], expected)
