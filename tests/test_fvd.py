"""FVD: the Fréchet distance against closed forms, KVD, the bootstrap interval, clip
preprocessing, and the torchmetrics Metric (update/compute/reset, DDP gathering) with a cheap
feature extractor standing in for I3D."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from frgan.metrics.fvd import (
    FrechetVideoDistance,
    bootstrap_interval,
    clips_for_i3d,
    frechet_distance,
    frechet_distance_gaussians,
    kernel_distance,
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


def test_bootstrap_interval_repeats_and_is_ordered():
    a, b = _gaussian_samples(20, 6, 10), _gaussian_samples(20, 6, 11) + 0.5
    first = bootstrap_interval(a, b, resamples=50, seed=3)
    assert first == bootstrap_interval(a, b, resamples=50, seed=3)
    assert first[0] < first[1]
    assert first != bootstrap_interval(a, b, resamples=50, seed=4)


def test_too_few_clips_are_an_error():
    with pytest.raises(ValueError, match="at least 2 clips"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(3, 4))


def test_clips_are_resized_to_224_on_the_8_bit_grid():
    clips = torch.rand(2, 9, 3, 16, 20) * 2 - 1
    prepared = clips_for_i3d(clips)
    assert prepared.shape == (2, 3, 9, 224, 224)
    constant = clips_for_i3d(torch.full((1, 9, 3, 16, 16), 0.3))
    level = round((0.3 + 1) * 127.5) / 127.5 - 1
    torch.testing.assert_close(constant, torch.full_like(constant, level))
    with pytest.raises(ValueError, match="at least 9 frames"):
        clips_for_i3d(torch.zeros(1, 8, 3, 16, 16))


def _clips(n: int, seed: int, frames: int = 9, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, frames, 3, size, size, generator=generator) * 2 - 1


def test_metric_matches_the_functions_on_its_features():
    metric = FrechetVideoDistance(PooledFeatures(), batch_size=3, bootstrap_resamples=20)
    real, fake = _clips(5, 0), _clips(4, 1) * 0.5
    metric.update(real[:2], fake[:3])
    metric.update(real[2:], fake[3:])
    result = metric.compute()
    real_f, fake_f = metric.features(real), metric.features(fake)
    assert result["clips_real"] == 5 and result["clips_fake"] == 4
    assert result["fvd"] == pytest.approx(float(frechet_distance(real_f, fake_f)), rel=1e-6)
    assert result["kvd"] == pytest.approx(float(kernel_distance(real_f, fake_f)), rel=1e-6)
    assert result["fvd_low"] <= result["fvd_high"]
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
    other = FrechetVideoDistance(PooledFeatures(), bootstrap_resamples=0)
    other.update(real[1::2], fake[1::2])
    others_states = iter([torch.cat(other.real_features), torch.cat(other.fake_features)])

    def gather(tensor, group=None):
        return [tensor, next(others_states)]

    metric = FrechetVideoDistance(
        PooledFeatures(),
        bootstrap_resamples=0,
        dist_sync_fn=gather,
        distributed_available_fn=lambda: True,
    )
    metric.update(real[0::2], fake[0::2])
    synced = metric.compute()
    single = FrechetVideoDistance(PooledFeatures(), bootstrap_resamples=0)
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
        metric = FrechetVideoDistance(PooledFeatures(), bootstrap_resamples=0)
        real, fake = _clips(6, 0), _clips(6, 1) * 0.5
        metric.update(real[rank::2], fake[rank::2])  # each process sees half of the clips
        results[rank] = metric.compute()
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_metric_gathers_the_clips_of_every_process():
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(_free_port(), results), nprocs=2, join=True)
    single = FrechetVideoDistance(PooledFeatures(), bootstrap_resamples=0)
    single.update(_clips(6, 0), _clips(6, 1) * 0.5)
    expected = single.compute()
    for rank in (0, 1):
        assert results[rank]["clips_real"] == 6
        assert results[rank]["fvd"] == pytest.approx(expected["fvd"], rel=1e-5)
        assert results[rank]["kvd"] == pytest.approx(expected["kvd"], rel=1e-5)
