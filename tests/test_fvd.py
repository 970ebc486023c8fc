"""FVD: the Fréchet distance against closed forms, KVD, the jackknife interval's coverage on
Gaussian features, clip preprocessing (TF1's resize against its formula), and the torchmetrics Metric (update/compute/reset, DDP gathering) with a cheap
feature extractor standing in for I3D."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from frgan.metrics.fvd import (
    FrechetVideoDistance,
    clips_for_i3d,
    frechet_distance,
    frechet_distance_gaussians,
    jackknife_interval,
    kernel_distance,
    resize_bilinear_tf1,
)


class PooledFeatures(nn.Module):
    """Clips [B,3,T,224,224] -> 3·2·4·4 = 96 pooled values: cheap, deterministic features."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool3d(clips, (2, 4, 4)).flatten(1)


def _gaussian_samples(
    n: int, d: int, seed: int, covariance_seed: int | None = None
) -> torch.Tensor:
    """n samples of a correlated Gaussian; the same covariance_seed, the same distribution."""
    mixing_seed = seed if covariance_seed is None else covariance_seed
    mixing_generator = torch.Generator().manual_seed(mixing_seed)
    mixing = torch.randn(d, d, generator=mixing_generator, dtype=torch.float64) / d**0.5
    generator = torch.Generator().manual_seed(seed + 1000)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing


@pytest.mark.parametrize(("n", "d"), [(30, 50), (400, 20)])  # fewer and more samples than dims
def test_identical_sets_are_at_distance_zero(n, d):
    features = _gaussian_samples(n, d, 0)
    assert abs(float(frechet_distance(features, features))) < 1e-8


@pytest.mark.parametrize(("n", "d"), [(30, 50), (400, 20)])
def test_a_shifted_set_is_at_the_squared_shift(n, d):
    features = _gaussian_samples(n, d, 1)
    shift = torch.linspace(-1, 1, d, dtype=torch.float64)
    distance = frechet_distance(features, features + shift)
    assert float(distance) == pytest.approx(float(shift.square().sum()), rel=1e-9)


def test_gaussians_with_diagonal_covariances_match_the_closed_form():
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = (mean_a - mean_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum()
    distance = frechet_distance_gaussians(mean_a, var_a.diag(), mean_b, var_b.diag())
    assert float(distance) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(("n", "d"), [(12, 40), (300, 16)])
def test_features_give_the_distance_of_their_fitted_gaussians(n, d):
    a, b = _gaussian_samples(n, d, 2), _gaussian_samples(n + 3, d, 3) + 0.3
    fitted = frechet_distance_gaussians(a.mean(0), a.T.cov(), b.mean(0), b.T.cov())
    assert float(frechet_distance(a, b)) == pytest.approx(float(fitted), rel=1e-8)


def test_distance_agrees_with_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    a, b = _gaussian_samples(200, 30, 4), _gaussian_samples(150, 30, 5) * 1.5 + 0.2
    cov_a, cov_b = a.T.cov().numpy(), b.T.cov().numpy()
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = float((a.mean(0) - b.mean(0)).square().sum()) + (cov_a + cov_b - 2 * root).trace()
    assert float(frechet_distance(a, b)) == pytest.approx(expected, rel=1e-6)


def test_kernel_distance_is_unbiased_and_grows_with_the_shift():
    a, b = _gaussian_samples(300, 8, 6, covariance_seed=0), _gaussian_samples(300, 8, 7, 0)
    same = float(kernel_distance(a, b))
    shifted = float(kernel_distance(a, b + 1.0))
    assert abs(same) < 0.05 * shifted and shifted > 0


def test_kernel_distance_of_degree_one_is_the_explicit_sum():
    a, b = _gaussian_samples(5, 3, 8), _gaussian_samples(4, 3, 9)

    def k(x, y):
        return float(x @ y) / 3 + 1

    within_a = sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
    within_b = sum(k(b[i], b[j]) for i in range(4) for j in range(4) if i != j) / 12
    cross = sum(k(x, y) for x in a for y in b) / 20
    expected = within_a + within_b - 2 * cross
    assert float(kernel_distance(a, b, degree=1)) == pytest.approx(expected, rel=1e-10)


def _two_gaussians(d: int, same: bool):
    """Means and mixing matrices (covariance AᵀA) of two Gaussians, and their Fréchet distance."""
    generator = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    mean_a, mixing_a = draw(d), draw(d, d) / d**0.5
    mean_b, mixing_b = (mean_a, mixing_a) if same else (mean_a + 0.3 * draw(d), draw(d, d) / d**0.5)
    distance = frechet_distance_gaussians(
        mean_a, mixing_a.T @ mixing_a, mean_b, mixing_b.T @ mixing_b
    )
    return (mean_a, mixing_a), (mean_b, mixing_b), float(distance)


@pytest.fixture
def one_thread():
    """Thousands of 8×8 decompositions: one thread, not two spinning on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("same", [False, True])
def test_jackknife_interval_covers_the_expected_fvd_at_its_size(same, one_thread):
    """On 32 + 32 draws of two 8-d Gaussians, the 95% interval covers E[FVD at 32 clips] in about
    95% of repetitions. That expectation lies above the closed-form distance (the bias of few
    samples), which is why the interval targets it: it is centred on the FVD it stands beside."""
    (mean_a, mixing_a), (mean_b, mixing_b), population = _two_gaussians(8, same)
    generator = torch.Generator().manual_seed(1)

    def draw_sets():
        noise = torch.randn(2, 32, 8, generator=generator, dtype=torch.float64)
        return noise[0] @ mixing_a + mean_a, noise[1] @ mixing_b + mean_b

    draws = torch.stack([frechet_distance(*draw_sets()) for _ in range(1000)])
    expected = float(draws.mean())
    assert expected > population + 0.5, "few samples bias the distance upwards"
    covered, widths = 0, []
    for _ in range(200):
        a, b = draw_sets()
        low, high, error = jackknife_interval(a, b)
        assert low <= float(frechet_distance(a, b)) <= high and error > 0
        covered += low <= expected <= high
        widths.append(high - low)
    coverage = covered / 200
    # different distributions: the jackknife is close to nominal (0.90-0.98 measured with
    # scripts/fvd_interval_coverage.py); the same distribution: conservative (up to 1.0)
    assert 0.88 <= coverage <= (1.0 if same else 0.99), coverage
    ideal_width = 2 * 1.96 * float(draws.std())  # from the spread of FVD over draws
    assert 0.8 < sum(widths) / len(widths) / ideal_width < 1.6


def test_jackknife_interval_of_a_set_with_itself_starts_at_zero():
    a, b = _gaussian_samples(32, 16, 10), _gaussian_samples(32, 16, 11, covariance_seed=10)
    low, high, _ = jackknife_interval(a, a)
    assert low == 0.0
    assert high < 0.25 * float(frechet_distance(a, b)), "near 0, well below two independent sets"
    assert jackknife_interval(a, b) == jackknife_interval(a, b), "deterministic"
    with pytest.raises(ValueError, match="at least 3 clips"):
        jackknife_interval(a[:2], b)


def test_too_few_clips_are_an_error():
    with pytest.raises(ValueError, match="at least 2 clips"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(3, 4))


def test_clips_are_resized_to_224_on_the_8_bit_grid():
    clips = torch.rand(1, 9, 3, 16, 20) * 2 - 1
    for resize in ("tf1", "torch"):
        assert clips_for_i3d(clips, resize).shape == (1, 3, 9, 224, 224)
        constant = clips_for_i3d(torch.full((1, 9, 3, 16, 16), 0.3), resize)
        level = round((0.3 + 1) * 127.5) / 127.5 - 1
        torch.testing.assert_close(constant, torch.full_like(constant, level))
    assert not torch.allclose(clips_for_i3d(clips, "tf1"), clips_for_i3d(clips, "torch"))
    with pytest.raises(ValueError, match="at least 9 frames"):
        clips_for_i3d(torch.zeros(1, 8, 3, 16, 16))
    with pytest.raises(ValueError, match="resize must be one of"):
        clips_for_i3d(clips, "bicubic")


def _tf1_resize_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """TF1's resize_bilinear kernel (align_corners=False, half_pixel_centers=False) written out
    pixel by pixel: in = out_index * (in_size / out_size) in float32, lower = floor(in),
    upper = min(ceil(in), in_size - 1), lerp = in - floor(in); x first, then y."""

    def taps(in_size: int, out_size: int, index: int) -> tuple[int, int, np.float32]:
        position = np.float32(index) * (np.float32(in_size) / np.float32(out_size))
        lower = np.floor(position)
        return int(lower), min(int(np.ceil(position)), in_size - 1), position - lower

    out = np.zeros((height, width), np.float32)
    for y in range(height):
        y0, y1, dy = taps(image.shape[0], height, y)
        for x in range(width):
            x0, x1, dx = taps(image.shape[1], width, x)
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * dx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * dx
            out[y, x] = top + (bottom - top) * dy
    return out


def test_tf1_resize_is_tensorflow_1_resize_bilinear():
    # by hand: 2 -> 4 reads the input at 0, 0.5, 1, 1.5 (clamped to the last pixel)
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]])
    expected = torch.tensor(
        [[0.0, 5.0, 10.0, 10.0], [10.0, 15.0, 20.0, 20.0], [20.0, 25.0, 30.0, 30.0]]
        + [[20.0, 25.0, 30.0, 30.0]]
    )
    torch.testing.assert_close(resize_bilinear_tf1(image, (4, 4)), expected)
    # halving keeps the even pixels (no averaging, no half-pixel shift)
    grid = torch.arange(16.0).view(4, 4)
    torch.testing.assert_close(resize_bilinear_tf1(grid, (2, 2)), grid[::2, ::2])
    generator = np.random.default_rng(0)
    for in_size, out_size in [
        ((5, 7), (17, 23)),  # up, in/out not a round number
        ((64, 64), (224, 224)),  # what FVD does to 64 px frames
        ((9, 13), (4, 6)),  # down
        ((30, 26), (22, 22)),
    ]:
        image = generator.uniform(0, 255, in_size).astype(np.float32)
        frames = torch.from_numpy(image).expand(2, 3, *in_size)  # [..., H, W] batches
        resized = resize_bilinear_tf1(frames, out_size)
        reference = torch.from_numpy(_tf1_resize_reference(image, *out_size))
        torch.testing.assert_close(
            resized[1, 2], reference, atol=0, rtol=0
        )  # the same float32 steps


def _clips(n: int, seed: int, frames: int = 9, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, frames, 3, size, size, generator=generator) * 2 - 1


def test_metric_matches_the_functions_on_its_features():
    metric = FrechetVideoDistance(PooledFeatures(), batch_size=3)
    real, fake = _clips(5, 0), _clips(4, 1) * 0.5
    metric.update(real[:2], fake[:3])
    metric.update(real[2:], fake[3:])
    result = metric.compute()
    real_f, fake_f = metric.features(real), metric.features(fake)
    assert result["clips_real"] == 5 and result["clips_fake"] == 4
    assert result["fvd"] == pytest.approx(float(frechet_distance(real_f, fake_f)), rel=1e-6)
    assert result["kvd"] == pytest.approx(float(kernel_distance(real_f, fake_f)), rel=1e-6)
    low, high, error = jackknife_interval(real_f, fake_f)
    assert (result["fvd_low"], result["fvd_high"]) == pytest.approx((low, high), rel=1e-6)
    assert result["fvd_se"] == pytest.approx(error, rel=1e-6)
    metric.reset()
    metric.update(real_features=real_f, fake_features=real_f)
    assert abs(metric.compute()["fvd"]) < 1e-4


def test_metric_without_both_sides_says_so():
    metric = FrechetVideoDistance(PooledFeatures())
    metric.update(_clips(2, 0), None)
    with pytest.raises(ValueError, match="real and generated"):
        metric.compute()


def test_metric_syncs_the_features_of_other_processes():
    """The DDP path in one process: the gather hands back another process's states."""
    real, fake = _clips(6, 0), _clips(6, 1) * 0.5
    other = FrechetVideoDistance(PooledFeatures(), interval=False)
    other.update(real[1::2], fake[1::2])
    others_states = iter([torch.cat(other.real_features), torch.cat(other.fake_features)])

    def gather(tensor, group=None):
        return [tensor, next(others_states)]

    metric = FrechetVideoDistance(
        PooledFeatures(),
        interval=False,
        dist_sync_fn=gather,
        distributed_available_fn=lambda: True,
    )
    metric.update(real[0::2], fake[0::2])
    synced = metric.compute()
    single = FrechetVideoDistance(PooledFeatures(), interval=False)
    single.update(real, fake)
    expected = single.compute()
    assert synced["clips_real"] == synced["clips_fake"] == 6
    assert synced["fvd"] == pytest.approx(expected["fvd"], rel=1e-6)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, port: int, results) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        metric = FrechetVideoDistance(PooledFeatures(), interval=False)
        real, fake = _clips(6, 0), _clips(6, 1) * 0.5
        metric.update(real[rank::2], fake[rank::2])  # each process sees half of the clips
        results[rank] = metric.compute()
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_metric_gathers_the_clips_of_every_process():
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(_free_port(), results), nprocs=2, join=True)
    single = FrechetVideoDistance(PooledFeatures(), interval=False)
    single.update(_clips(6, 0), _clips(6, 1) * 0.5)
    expected = single.compute()
    for rank in (0, 1):
        assert results[rank]["clips_real"] == 6
        assert results[rank]["fvd"] == pytest.approx(expected["fvd"], rel=1e-5)
        assert results[rank]["kvd"] == pytest.approx(expected["kvd"], rel=1e-5)
