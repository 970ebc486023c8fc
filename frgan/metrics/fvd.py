"""Fréchet Video Distance (Unterthiner et al. 2018) and its kernel variant, KVD.

Features: the 400 Kinetics logits of Inception-I3D (frgan.metrics.i3d), as in the original
FVD. Clips [B,T,3,H,W] in [-1,1] are rounded to 8 bits (what a saved video holds), resized
frame by frame to 224×224 (bilinear, no antialiasing, like the original's
tf.image.resize_bilinear; PyTorch's half-pixel centres shift the grid by under a pixel) and
fed to the network in [-1,1]; T >= 9 (16 in the original).

FVD = ‖μ_r − μ_f‖² + tr(Σ_r) + tr(Σ_f) − 2·tr((Σ_r Σ_f)^½), in float64. The trace of the
square root is computed as the nuclear norm of C_r C_fᵀ, where C is the centred feature matrix
/ √(n−1) (n ≤ 400) or the symmetric square root of Σ: the eigenvalues of Σ_r Σ_f = C_rᵀC_r C_fᵀC_f
are the squared singular values of C_r C_fᵀ, so no matrix square root of a non-symmetric or
singular matrix is ever taken (with fewer clips than features, Σ is singular).

With few clips FVD is biased upwards and noisy. Beside it the metric reports how many clips it
used, a bootstrap 95% interval (clips resampled with replacement, fixed seed), and KVD: the
unbiased squared MMD with the polynomial kernel k(x, y) = (xᵀy / d + 1)³ (as KID), which has
no bias at any size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from frgan.metrics.i3d import MIN_FRAMES, RESOLUTION, InceptionI3d, state_dict_from_checkpoint
from frgan.metrics.i3d_weights import load_variables


def _factor(features: torch.Tensor) -> torch.Tensor:
    """C with CᵀC = the sample covariance of features [n, d] (float64)."""
    n, d = features.shape
    centred = features - features.mean(dim=0)
    if n <= d:
        return centred / (n - 1) ** 0.5
    return psd_sqrt(centred.T @ centred / (n - 1))


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def _frechet(
    mean_a: torch.Tensor, factor_a: torch.Tensor, mean_b: torch.Tensor, factor_b: torch.Tensor
) -> torch.Tensor:
    cross = torch.linalg.matrix_norm(factor_a @ factor_b.T, ord="nuc")
    traces = factor_a.square().sum() + factor_b.square().sum()
    return (mean_a - mean_b).square().sum() + traces - 2 * cross


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between Gaussians fitted to two feature sets [n, d] (float64 scalar)."""
    a, b = _check_sets(features_a, features_b)
    return _frechet(a.mean(0), _factor(a), b.mean(0), _factor(b))


def frechet_distance_gaussians(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> torch.Tensor:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b) (float64 scalar)."""
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    return _frechet(mean_a, psd_sqrt(cov_a), mean_b, psd_sqrt(cov_b))


def kernel_distance(
    features_a: torch.Tensor, features_b: torch.Tensor, degree: int = 3
) -> torch.Tensor:
    """Unbiased squared MMD with the kernel (xᵀy / d + 1)^degree (float64 scalar)."""
    a, b = _check_sets(features_a, features_b)
    d = a.shape[1]

    def kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x @ y.T / d + 1) ** degree

    def within(x: torch.Tensor) -> torch.Tensor:
        k = kernel(x, x)
        n = x.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    return within(a) + within(b) - 2 * kernel(a, b).mean()


def bootstrap_interval(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the Fréchet distance when both sets are resampled with
    replacement (`resamples` times, a fixed seed: the same inputs give the same interval)."""
    a, b = _check_sets(features_a, features_b)
    generator = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            frechet_distance(
                a[torch.randint(len(a), (len(a),), generator=generator)],
                b[torch.randint(len(b), (len(b),), generator=generator)],
            )
            for _ in range(resamples)
        ]
    )
    tail = (1 - level) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=values.dtype))
    return float(low), float(high)


def _check_sets(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected two feature sets [n, d] of the same d, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 clips per set, got {len(a)} and {len(b)}")
    return a.detach().double().cpu(), b.detach().double().cpu()


def clips_for_i3d(clips: torch.Tensor) -> torch.Tensor:
    """[B,T,3,H,W] in [-1,1] -> [B,3,T,224,224] in [-1,1] on the 8-bit grid."""
    if clips.ndim != 5 or clips.shape[2] != 3:
        raise ValueError(f"expected clips [B,T,3,H,W], got {tuple(clips.shape)}")
    if clips.shape[1] < MIN_FRAMES:
        raise ValueError(f"FVD needs clips of at least {MIN_FRAMES} frames, got {clips.shape[1]}")
    levels = ((clips.float().clamp(-1, 1) + 1) * 127.5).round()
    frames = levels.flatten(0, 1) / 127.5 - 1
    if tuple(frames.shape[-2:]) != (RESOLUTION, RESOLUTION):
        frames = F.interpolate(
            frames, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False
        )
    return rearrange(frames, "(b t) c h w -> b c t h w", b=clips.shape[0])


def load_i3d(weights: str | None = None) -> InceptionI3d:
    """The Kinetics-400 I3D with the checkpoint's weights (raises WeightsUnavailable, with
    how to get them, when the file is missing)."""
    network = InceptionI3d()
    network.load_state_dict(state_dict_from_checkpoint(load_variables(weights)))
    return network


class FrechetVideoDistance(Metric):
    """FVD between the real and the generated clips given to `update`, with KVD and a
    bootstrap interval. DDP: the per-clip features are states gathered from every process.

    extractor: clips [B,3,T,224,224] -> features [B,d]; default the Kinetics-400 I3D read from
    `weights` (see frgan.metrics.i3d_weights for where it is looked for).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        extractor: nn.Module | None = None,
        weights: str | None = None,
        batch_size: int = 8,
        bootstrap_resamples: int = 200,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.extractor = extractor if extractor is not None else load_i3d(weights)
        self.extractor.requires_grad_(False).eval()
        self.batch_size, self.bootstrap_resamples, self.seed = batch_size, bootstrap_resamples, seed
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    @torch.no_grad()
    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] in [-1,1] -> features [B,d] (float32), `batch_size` clips at a time."""
        return torch.cat(
            [
                self.extractor(clips_for_i3d(clips[i : i + self.batch_size].to(self.device)))
                for i in range(0, len(clips), self.batch_size)
            ]
        ).float()

    def update(
        self,
        real_clips: torch.Tensor | None = None,
        fake_clips: torch.Tensor | None = None,
        *,
        real_features: torch.Tensor | None = None,
        fake_features: torch.Tensor | None = None,
    ) -> None:
        """Add clips [B,T,3,H,W] in [-1,1] to either side, or features [B,d] computed before
        (real clips shared by several metrics are passed through the network once)."""
        for clips, features, state in (
            (real_clips, real_features, self.real_features),
            (fake_clips, fake_features, self.fake_features),
        ):
            if clips is not None and features is not None:
                raise ValueError("give clips or features for a side, not both")
            if clips is not None:
                features = self.features(clips)
            if features is not None:
                state.append(features.float().to(self.device))

    def compute(self) -> dict[str, float | int | None]:
        """{"fvd", "fvd_low", "fvd_high" (bootstrap 95%; None with bootstrap_resamples=0),
        "kvd", "clips_real", "clips_fake"}."""
        real, fake = _gathered(self.real_features), _gathered(self.fake_features)
        if real is None or fake is None:
            raise ValueError("FVD needs real and generated clips; call update() with both first")
        low = high = None
        if self.bootstrap_resamples > 0:
            low, high = bootstrap_interval(real, fake, self.bootstrap_resamples, seed=self.seed)
        return {
            "fvd": float(frechet_distance(real, fake)),
            "fvd_low": low,
            "fvd_high": high,
            "kvd": float(kernel_distance(real, fake)),
            "clips_real": len(real),
            "clips_fake": len(fake),
        }


def _gathered(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor | None:
    """A feature state as one tensor (a list before a DDP sync, a tensor after); None if empty."""
    if isinstance(state, list) and not state:
        return None
    features = dim_zero_cat(state)
    return features if len(features) else None
