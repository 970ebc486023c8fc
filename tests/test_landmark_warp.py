"""model.landmark_warp: the source frame moved onto the target's landmarks by a thin-plate
spline before the generator paints (frgan/models/tps.py, frgan/models/generator.py)."""

import pytest
import torch
from conftest import fit_quietly, load_script
from test_models import SIZE, RandomPairs

from frgan.errors import ConfigError
from frgan.models import ForecastGAN, Generator
from frgan.models.forecaster import build_forecaster
from frgan.models.tps import (
    CLOSED,
    FACE68_LID_PAIRS,
    FACE68_SPLINE_POINTS,
    LID_GAP,
    face_flow,
    hold_apart,
    least_jacobian,
    tps_flow,
)
from frgan.models.warp import warp
from frgan.render.face68 import mean_face68

MEAN_FACE = torch.from_numpy(mean_face68(SIZE, SIZE)[:, :2]).float()


def _pixel_grid(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([xs, ys], dim=-1)  # [H,W,2]


def test_the_spline_of_equal_points_is_the_identity_and_an_affine_map_is_exact():
    torch.manual_seed(0)
    points = torch.rand(2, 20, 2) * 32
    assert tps_flow(points, points, 32, 32).abs().max() < 1e-4
    matrix, shift = torch.tensor([[1.1, 0.1], [-0.05, 0.95]]), torch.tensor([2.0, -3.0])
    flow = tps_flow(points, points @ matrix.T + shift, 32, 32)
    pixels = _pixel_grid(32, 32)
    expected = (pixels - shift) @ torch.linalg.inv(matrix).T - pixels
    torch.testing.assert_close(flow[0].permute(1, 2, 0), expected, atol=1e-3, rtol=0)


def test_the_spline_carries_each_target_landmark_to_its_source_landmark():
    """At a target landmark (placed on a pixel centre) the backward flow points at the source's
    landmark, however the points move, coincident ones (a closed mouth) included."""
    torch.manual_seed(0)
    cells = torch.randperm(24 * 24)[:30]
    target = torch.stack([cells % 24, cells // 24], dim=-1).float() + 0.5
    target = torch.cat([target, target[:2]])[None]  # two landmarks coincide
    source = target + torch.randn_like(target)
    source[0, -2:] = source[0, :2]
    flow = tps_flow(source, target, 24, 24)
    assert torch.isfinite(flow).all()
    rows, columns = (target[0, :, 1] - 0.5).long(), (target[0, :, 0] - 0.5).long()
    landed = target[0] + flow[0, :, rows, columns].T
    torch.testing.assert_close(landed, source[0], atol=0.05, rtol=0)


def test_the_spline_is_the_textbook_one_in_pieces_of_any_size():
    """tps_flow (squared distances expanded, the kernel in PIXEL_CHUNK pieces) equals the
    spline written out with cdist at once (the benchmark's plain formulation), for a frame
    whose pixel count is no multiple of the piece and a landmark on a pixel centre."""
    from frgan.models.tps import PIXEL_CHUNK

    textbook_spline = load_script("bench_geometry").textbook_spline
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, 20, 2, generator=generator, dtype=torch.float64) * 30
    source = target + torch.randn(3, 20, 2, generator=generator, dtype=torch.float64)
    target[:, 1] = torch.tensor([10.5, 7.5], dtype=torch.float64)
    height, width = 37, 29
    assert height * width % PIXEL_CHUNK
    flow = tps_flow(source, target, height, width)
    assert torch.allclose(flow, textbook_spline(source, target, height, width), atol=1e-8)


def test_points_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        tps_flow(torch.zeros(1, 68, 2), torch.zeros(1, 67, 2), 8, 8)


def _pair(batch: int = 2):
    torch.manual_seed(0)
    x0, s0, st = (torch.rand(batch, 3, SIZE, SIZE) * 2 - 1 for _ in range(3))
    l0 = MEAN_FACE.expand(batch, -1, -1).clone()
    lt = l0 + torch.randn_like(l0) * 0.5
    return x0, s0, st, l0, lt


def test_a_silent_generator_returns_the_source_moved_by_the_spline():
    generator = Generator.from_preset("tiny", SIZE, "edit", warp=True, landmark_warp=True)
    generator.zero_flow()
    with torch.no_grad():  # w = 0: the frame is the moved source
        generator.to_mask.weight.zero_()
        generator.to_mask.bias.fill_(-100.0)
    x0, s0, st, l0, lt = _pair()
    out = generator.eval()(x0, s0, st, l0, lt)
    prior = face_flow(l0, lt, SIZE, SIZE)
    torch.testing.assert_close(out.flow, prior)
    torch.testing.assert_close(out.frame, warp(x0, prior))
    with pytest.raises(ValueError, match="needs the landmarks"):
        generator(x0, s0, st)


def test_without_a_learnt_flow_the_spline_alone_moves_the_source():
    generator = Generator.from_preset("tiny", SIZE, "edit", landmark_warp=True).eval()
    x0, s0, st, l0, lt = _pair()
    torch.testing.assert_close(generator(x0, s0, st, l0, lt).flow, face_flow(l0, lt, SIZE, SIZE))


def _folds(flow: torch.Tensor) -> bool:
    return bool(least_jacobian(flow).min() < 0)


def test_the_least_jacobian_is_one_for_the_identity_and_negative_for_a_mirror():
    mirror = torch.zeros(1, 2, 8, 8)
    mirror[:, 0] = 8 - 2 * (torch.arange(8.0) + 0.5)  # p.x -> 8 - p.x: turned over left to right
    minimum = least_jacobian(torch.cat([torch.zeros(1, 2, 8, 8), mirror]))
    torch.testing.assert_close(minimum, torch.tensor([1.0, -1.0]))


def _closing_face(size: int = 64):
    """An open mouth in the source; in the target the lids and the lips meet, the upper ones a
    hair's breadth below (as in a real blink's landmarks: the test subjects' blinks cross by up
    to 0.007 px)."""
    l0 = torch.from_numpy(mean_face68(size, size)[:, :2]).float()[None]
    l0[:, [65, 66, 67], 1] += 1.5  # the mean face's lips part by 1.5 px: 3 px here
    lt = torch.from_numpy(mean_face68(size, size)[:, :2]).float()[None]
    below = torch.tensor([0.0, 0.005])
    lt[:, [37, 38], :] = lt[:, [41, 40], :] + below
    lt[:, [43, 44], :] = lt[:, [47, 46], :] + below
    lt[:, [61, 62, 63], :] = lt[:, [67, 66, 65], :] + below
    return l0, lt


def test_a_closing_eye_and_mouth_do_not_fold_the_face():
    """The spline of the bare 68 points asks one pixel to come from two places and folds the face
    there (rings round a blinking eye); the face's spline, its lids held apart, does not, and
    the lids still come down to LID_GAP of their gap."""
    l0, lt = _closing_face()
    assert _folds(tps_flow(l0, lt, 64, 64))
    assert not _folds(face_flow(l0, lt, 64, 64))
    _, held = hold_apart(l0, lt, FACE68_LID_PAIRS, LID_GAP)
    for upper, lower in FACE68_LID_PAIRS:
        gap = (held[0, lower] - held[0, upper]).norm()
        torch.testing.assert_close(gap, LID_GAP * (l0[0, lower] - l0[0, upper]).norm())


def test_hold_apart_keeps_a_closing_pair_apart_and_lays_a_shut_one_along_the_target():
    source = torch.tensor(
        [[[0.0, 0.0], [0.0, 4.0], [10.0, 0.0], [10.0, 0.1], [20.0, 0.0], [20.0, 2.0]]]
    )
    target = torch.tensor(
        [[[1.0, 1.0], [1.0, 0.8], [12.0, 0.0], [12.0, 3.0], [20.0, 0.0], [20.0, 3.0]]]
    )
    held_source, held_target = hold_apart(source, target, ((0, 1), (2, 3), (4, 5)), 0.25)
    # crossed in the target: a quarter of the source's 4 px, about the target pair's middle
    torch.testing.assert_close(held_target[0, :2], torch.tensor([[1.0, 0.4], [1.0, 1.4]]))
    # shut in the source (0.1 px < CLOSED): laid along the target's opening, CLOSED apart
    laid = torch.tensor([[10.0, 0.05 - CLOSED / 2], [10.0, 0.05 + CLOSED / 2]])
    torch.testing.assert_close(held_source[0, 2:4], laid)
    # opening wider than the source: left as it is
    torch.testing.assert_close(held_source[0, 4:], source[0, 4:])
    torch.testing.assert_close(held_target[0, 2:], target[0, 2:])
    torch.testing.assert_close(held_source[0, :2], source[0, :2])
    assert source[0, 2, 1] == 0.0  # the inputs are left as they were


def test_each_lid_point_is_in_one_pair_and_steers_the_spline():
    points = [i for pair in FACE68_LID_PAIRS for i in pair]
    assert len(points) == len(set(points)) and set(points) <= set(FACE68_SPLINE_POINTS)


def test_a_bad_value_is_refused_and_the_warp_is_part_of_the_identity():
    with pytest.raises(ConfigError, match="model.landmark_warp='tps' is invalid"):
        ForecastGAN(preset="tiny", image_size=SIZE, landmark_warp="tps")
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        landmark_warp=True)  # fmt: skip
    assert model.identity()["landmark_warp"] is True
    assert "landmark_warp" not in ForecastGAN(preset="tiny", image_size=SIZE).identity()
    assert build_forecaster(model.identity()).landmark_warp


def test_animate_passes_each_frames_landmarks_and_refuses_clips_without_them():
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        landmark_warp=True).eval()  # fmt: skip
    x0, s0, _, l0, _ = _pair()
    structures = torch.rand(2, 5, 3, SIZE, SIZE)
    landmarks = l0[:, None] + torch.randn(2, 5, 68, 2) * 0.5
    clips = model.animate(x0, s0, structures, l0, landmarks, chunk=3)["forecast"]
    one = model(x0[1:], s0[1:], structures[1:, 4], l0[1:], landmarks[1:, 4]).frame
    torch.testing.assert_close(clips[1, 4], one[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs the landmarks"):
        model.animate(x0, s0, structures)


class PairsWithBothLandmarks(RandomPairs):
    def __getitem__(self, index):
        pair = super().__getitem__(index)
        g = torch.Generator().manual_seed(index)
        pair["l0"] = MEAN_FACE
        pair["lt"] = MEAN_FACE + torch.randn(68, 2, generator=g) * 0.5
        return pair


def test_training_with_the_landmark_warp_needs_and_uses_both_landmarks(tmp_path):
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        landmark_warp=True)  # fmt: skip
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    fit_quietly(model, tmp_path, PairsWithBothLandmarks())
    changed = [k for k, v in model.generator.state_dict().items() if not torch.equal(v, before[k])]
    assert "to_flow.weight" in changed and "image_encoder.stem.weight" in changed
    pair = RandomPairs()[0]
    batch = {k: v[None] for k, v in pair.items()}
    with pytest.raises(ValueError, match="'l0' and 'lt'.*landmark_warp=false"):
        model.generator_inputs(batch)


def test_the_validation_sample_carries_the_landmarks_it_is_drawn_with():
    model = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True,
                        landmark_warp=True).eval()  # fmt: skip
    loader = torch.utils.data.DataLoader(PairsWithBothLandmarks(), batch_size=4)
    sample = model.select_sample(loader, max_frames=3)
    assert sample["l0"].shape == (1, 68, 2) and sample["lt"].shape == (1, 68, 2)
    assert model.draw_sample(sample).shape == (1, 3, SIZE, 4 * SIZE)
