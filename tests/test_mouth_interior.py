"""model.mouth_interior: a learnt texture fills the target's mouth opening in the moved source
(frgan/models/mouth_interior.py, frgan/models/generator.py)."""

import pytest
import torch
from conftest import fit_quietly
from test_landmark_warp import MEAN_FACE, PairsWithBothLandmarks
from test_models import SIZE

from frgan.errors import ConfigError
from frgan.metrics.regions import (
    INNER_LIPS,
    mouth_opening_coverage,
    polygon_area,
    polygon_coverage,
)
from frgan.models import ForecastGAN, Generator
from frgan.models.forecaster import build_forecaster
from frgan.models.mouth_interior import (
    LR_GAIN,
    OPENNESS_MAX,
    RING,
    MouthInterior,
    opening_coordinates,
)
from frgan.models.tps import face_flow
from frgan.models.warp import warp

SIZE64 = 64


def _mouth(openness: float) -> torch.Tensor:
    """68 points [1,68,2] at 64 px whose inner lip ring is an ellipse about (32.5, 40.5), 16
    px wide, opened `openness` × its width between the middle of the lips (0: shut)."""
    points = torch.full((1, 68, 2), 32.5)
    centre = torch.tensor([32.5, 40.5])
    for index, (u, v) in zip(INNER_LIPS, RING, strict=True):
        points[0, index] = centre + torch.tensor([8.0 * u, 8.0 * openness * v])
    return points


def _texture(interior: MouthInterior, values: torch.Tensor) -> None:
    """Set the texture [1,3,a,v,u] to `values` (in (−1, 1))."""
    with torch.no_grad():
        interior.logits.copy_(torch.atanh(values) / LR_GAIN)


def test_polygon_coverage_counts_the_covered_share_of_each_pixel():
    square = torch.tensor([[[0.0, 0.0], [2.5, 0.0], [2.5, 4.0], [0.0, 4.0]]])
    coverage = polygon_coverage(square, 4, 4, samples=2)
    torch.testing.assert_close(coverage[0, 0, 0], torch.tensor([1.0, 1.0, 0.5, 0.0]))
    torch.testing.assert_close(polygon_area(square), torch.tensor([10.0]))
    torch.testing.assert_close(polygon_area(square.flip(1)), torch.tensor([10.0]))
    assert mouth_opening_coverage(_mouth(0.0), SIZE64, SIZE64).sum() == 0


def test_the_opening_coordinates_run_corner_to_corner_and_lip_to_lip():
    coordinates = opening_coordinates(_mouth(0.4), SIZE64, SIZE64)[0]  # [H,W,3]
    # pixel centres: (row 40, column 32) is (32.5, 40.5), the middle of the opening
    torch.testing.assert_close(coordinates[40, 32, :2], torch.zeros(2), atol=0.05, rtol=0)
    assert coordinates[40, 25, 0] < -0.8 and coordinates[40, 39, 0] > 0.8  # near the corners
    assert coordinates[38, 32, 1] < -0.5 < 0.5 < coordinates[43, 32, 1]  # upper, lower lip
    # how far open: |l62 - l66| / |l60 - l64| = 0.4 over [0, OPENNESS_MAX] -> [-1, 1]
    expected = 2 * 0.4 / OPENNESS_MAX - 1
    torch.testing.assert_close(coordinates[..., 2], torch.full((SIZE64, SIZE64), expected))
    assert (opening_coordinates(_mouth(0.0), SIZE64, SIZE64)[..., 2] == -1).all()


def test_the_texture_fills_the_targets_opening_and_nothing_else():
    interior = MouthInterior()
    _texture(interior, torch.full_like(interior.logits, 0.5))
    source = torch.full((1, 3, SIZE64, SIZE64), -0.5)
    closed, smiling = _mouth(0.0), _mouth(0.4)
    with torch.no_grad():
        filled = interior(source, closed, smiling)
        opening = mouth_opening_coverage(smiling, SIZE64, SIZE64)
        torch.testing.assert_close(filled, source + opening * (0.5 - source))
        assert (opening == 1).sum() > 20
        # a shut target mouth: nothing to fill
        torch.testing.assert_close(interior(source, closed, closed), source)
        # a source that shows its own opening there keeps it (a photo that already smiles)
        torch.testing.assert_close(interior(source, smiling, smiling), source)


def test_the_texture_is_read_by_the_openness_of_the_mouth():
    interior = MouthInterior()
    steps = interior.logits.shape[2]
    by_openness = torch.linspace(-0.9, 0.9, steps).view(1, 1, steps, 1, 1)
    _texture(interior, by_openness.expand_as(interior.logits).clone())
    source = torch.zeros(1, 3, SIZE64, SIZE64)
    with torch.no_grad():
        slight = interior(source, _mouth(0.0), _mouth(0.1))[0, 0, 40, 32]
        wide = interior(source, _mouth(0.0), _mouth(0.5))[0, 0, 40, 32]
    torch.testing.assert_close(slight, torch.tensor(-0.9 + 1.8 * 0.1 / OPENNESS_MAX))
    torch.testing.assert_close(wide, torch.tensor(-0.9 + 1.8 * 0.5 / OPENNESS_MAX))


def test_the_texture_learns_the_colour_inside_the_opening():
    """L1 against a target whose opening is bright moves the texture there, and only the texels
    an opening reads."""
    interior = MouthInterior()
    optimizer = torch.optim.Adam(interior.parameters(), lr=4e-4, betas=(0.0, 0.9))
    source, target = torch.full((2, 1, 3, SIZE64, SIZE64), -0.5)
    smiling = _mouth(0.3)
    target = target + mouth_opening_coverage(smiling, SIZE64, SIZE64) * 1.2
    for _ in range(120):
        optimizer.zero_grad()
        (interior(source, _mouth(0.0), smiling) - target).abs().mean().backward()
        optimizer.step()
    texture = interior.texture()
    middle = texture[0, :, 3, 8, 16]  # the middle of the opening, openness 0.3
    torch.testing.assert_close(middle, torch.full((3,), 0.7), atol=0.05, rtol=0)
    assert (texture[0, :, 0] == 0).all()  # a shut mouth's texels: never read


def test_a_silent_generator_returns_the_moved_source_with_the_opening_filled():
    generator = Generator.from_preset(
        "tiny", SIZE64, "edit", warp=True, landmark_warp=True, mouth_interior=True
    )
    generator.zero_flow()
    with torch.no_grad():  # w = 0: the frame is the moved, filled source
        generator.to_mask.weight.zero_()
        generator.to_mask.bias.fill_(-100.0)
    torch.manual_seed(0)
    x0, s0, st = (torch.rand(1, 3, SIZE64, SIZE64) * 2 - 1 for _ in range(3))
    l0, lt = _mouth(0.0), _mouth(0.4)
    out = generator.eval()(x0, s0, st, l0, lt)
    moved = warp(x0, face_flow(l0, lt, SIZE64, SIZE64))
    torch.testing.assert_close(out.frame, generator.mouth_interior(moved, l0, lt, out.flow))
    assert not torch.allclose(out.frame, moved)
    with pytest.raises(ValueError, match="mouth_interior needs the landmarks"):
        generator(x0, s0, st)


def test_a_bad_value_is_refused_and_the_interior_is_part_of_the_identity():
    with pytest.raises(ConfigError, match="model.mouth_interior='teeth' is invalid"):
        ForecastGAN(preset="tiny", image_size=SIZE, mouth_interior="teeth")
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        landmark_warp=True, mouth_interior=True)  # fmt: skip
    assert model.identity()["mouth_interior"] is True
    assert "mouth_interior" not in ForecastGAN(preset="tiny", image_size=SIZE).identity()
    rebuilt = build_forecaster(model.identity())
    assert rebuilt.mouth_interior is not None
    rebuilt.load_state_dict(model.generator.state_dict())


def test_training_with_the_interior_needs_the_landmarks_and_learns_the_texture(tmp_path):
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        mouth_interior=True)  # fmt: skip
    before = model.generator.mouth_interior.logits.clone()

    class OpenMouths(PairsWithBothLandmarks):
        def __getitem__(self, index):
            pair = super().__getitem__(index)
            pair["lt"] = MEAN_FACE.clone()
            pair["lt"][[65, 66, 67], 1] += 2.0  # the lower inner lip drops: an opening
            return pair

    fit_quietly(model, tmp_path, OpenMouths())
    assert not torch.equal(model.generator.mouth_interior.logits, before)
    batch = {k: v[None] for k, v in OpenMouths()[0].items() if k != "l0"}
    with pytest.raises(ValueError, match="'l0' and 'lt'.*mouth_interior=false"):
        model.generator_inputs(batch)
