import pytest
import torch

from frgan.errors import ConfigError
from frgan.models import ForecastGAN
from frgan.models.losses import change_weighted_l1, gradient_difference

SIZE = 16


def test_change_weight_makes_the_pixels_the_target_changes_lead():
    source = torch.zeros(1, 3, 4, 4)
    target = source.clone()
    target[..., 1, 2] = 0.5  # one pixel changes by 0.5 in every channel
    frame = target + 0.1  # wrong by 0.1 everywhere
    assert torch.allclose(change_weighted_l1(frame, target, source, 0.0), torch.tensor([0.1]))
    # 15 unchanged pixels weigh 1, the changed one 1 + 4 * 0.5 = 3
    expected = 0.1 * (15 + 3) / 16
    assert torch.allclose(change_weighted_l1(frame, target, source, 4.0), torch.tensor([expected]))


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


def test_the_generator_loss_carries_both_terms_and_they_are_checked():
    torch.manual_seed(0)
    batch = {k: torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for k in ("x0", "s0", "xt", "st")}
    plain = ForecastGAN(preset="tiny", image_size=SIZE)
    model = ForecastGAN(preset="tiny", image_size=SIZE, change_weight=3.0, gradient_weight=5.0)
    model.load_state_dict(plain.state_dict())
    inputs = model.generator_inputs(batch)
    output = model.run_generator(inputs, model.generator)
    loss, logged = model.generator_loss(inputs, output)
    plain_loss, plain_logged = plain.generator_loss(inputs, output)
    l1 = change_weighted_l1(output.frame, batch["xt"], batch["x0"], 3.0).mean()
    gdl = gradient_difference(output.frame, batch["xt"]).mean()
    assert torch.allclose(logged["l1"], l1)
    assert torch.allclose(logged["gradient_difference"], gdl)
    assert "gradient_difference" not in plain_logged
    expected = plain_loss + model.hparams.l1_weight * (l1 - plain_logged["l1"]) + 5.0 * gdl
    assert torch.allclose(loss, expected, rtol=1e-5)
    for key in ("change_weight", "gradient_weight"):
        with pytest.raises(ConfigError, match=f"model.{key}"):
            ForecastGAN(preset="tiny", image_size=SIZE, **{key: -1.0})
