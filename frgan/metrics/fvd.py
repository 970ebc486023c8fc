"""Fréchet Video Distance (Unterthiner et al. 2018) and its kernel variant, KVD.

Features: the 400 Kinetics logits of Inception-I3D (frgan.metrics.i3d), as in the original
FVD. Clips [B,T,3,H,W] in [-1,1] are rounded to 8 bits (what a saved video holds), resized
frame by frame to 224×224 and fed to the network in [-1,1]; T >= 9 (16 in the original). The
resize is the original's by default (resize="tf1": TF1's tf.image.resize_bilinear, source
pixel = destination index · in/out, no half-pixel offset); resize="torch" is PyTorch's
half-pixel bilinear (F.interpolate, align_corners=False), which moves FVD by about 1%.

FVD = ‖μ_r − μ_f‖² + tr(Σ_r) + tr(Σ_f) − 2·tr((Σ_r Σ_f)^½), in float64. The trace of the
square root is computed as the nuclear norm of C_r C_fᵀ, where C is the centred feature matrix
/ √(n−1) (n ≤ 400) or the symmetric square root of Σ: the eigenvalues of Σ_r Σ_f = C_rᵀC_r C_fᵀC_f
are the squared singular values of C_r C_fᵀ, so no matrix square root of a non-symmetric or
singular matrix is ever taken (with fewer clips than features, Σ is singular).

With few clips FVD is biased upwards (a few dozen clips against 400 dimensions: by far more
than the distance itself) and noisy. Beside it the metric reports how many clips it used, a
95% jackknife interval and KVD: the unbiased squared MMD with the polynomial kernel
k(x, y) = (xᵀy / d + 1)³ (as KID), which has no bias at any size. The interval is FVD ± 1.96
delete-one jackknife standard errors (each clip of each set left out in turn), the low end
clamped at 0: it is an interval for the expected FVD at these numbers of clips (what other
clips from the same sources would give on average), not for the distance between the
populations, which no interval from a few dozen clips can bound. It is centred on the FVD it
stands beside; a bootstrap with replacement is not (repeated clips inflate the bias, and its
interval lies above the estimate). Coverage on Gaussian features: scripts/fvd_interval_coverage.py.
"""

from __future__ import annotations

from statistics import NormalDist

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from frgan.metrics.i3d import MIN_FRAMES, RESOLUTION, InceptionI3d, state_dict_from_checkpoint
from frgan.metrics.i3d_weights import load_variables


def _factor(features: torch.Tensor) -> torch.Tensor:
    """C with CᵀC = the sample covariance of features [..., n, d] (float64)."""
    n, d = features.shape[-2:]
    centred = features - features.mean(dim=-2, keepdim=True)
    if n <= d:
        return centred / (n - 1) ** 0.5
    return psd_sqrt(centred.mT @ centred / (n - 1))


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of symmetric positive semi-definite matrices [..., d, d]."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt().unsqueeze(-2)) @ vectors.mT


def _frechet(
    mean_a: torch.Tensor, factor_a: torch.Tensor, mean_b: torch.Tensor, factor_b: torch.Tensor
) -> torch.Tensor:
    """The distance from means [..., d] and factors [..., r, d] (leading dimensions broadcast)."""
    cross = torch.linalg.matrix_norm(factor_a @ factor_b.mT, ord="nuc")
    traces = factor_a.square().sum((-2, -1)) + factor_b.square().sum((-2, -1))
    return (mean_a - mean_b).square().sum(-1) + traces - 2 * cross


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


def jackknife_interval(
    features_a: torch.Tensor, features_b: torch.Tensor, level: float = 0.95
) -> tuple[float, float, float]:
    """(low, high, standard error): the Fréchet distance ± z·SE, SE from the delete-one
    jackknife over both sets (two-sample: the variances of leaving out a clip of either set
    add up), low clamped at 0. An interval for the expected distance at these set sizes;
    needs at least 3 clips per set. Deterministic."""
    a, b = _check_sets(features_a, features_b)
    if min(len(a), len(b)) < 3:
        raise ValueError(f"the jackknife needs at least 3 clips per set, got {len(a)} and {len(b)}")
    mean_a, factor_a, mean_b, factor_b = a.mean(0), _factor(a), b.mean(0), _factor(b)
    without_a = [
        _frechet(rest.mean(-2), _factor(rest), mean_b, factor_b) for rest in _leave_one_out(a)
    ]
    without_b = [
        _frechet(mean_a, factor_a, rest.mean(-2), _factor(rest)) for rest in _leave_one_out(b)
    ]
    variance = sum(_jackknife_variance(torch.cat(v)) for v in (without_a, without_b))
    distance = float(_frechet(mean_a, factor_a, mean_b, factor_b))
    error = float(variance.sqrt())
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return max(distance - z * error, 0.0), distance + z * error, error


def _leave_one_out(features: torch.Tensor, elements: int = 1 << 24):
    """The sets [k, n-1, d] without clip i, for every i, in chunks of about `elements` values."""
    n, d = features.shape
    positions = torch.arange(n - 1)
    chunk = max(1, elements // (n * d))
    for start in range(0, n, chunk):
        left_out = torch.arange(start, min(start + chunk, n))[:, None]
        yield features[positions + (positions >= left_out)]  # row i: every index but i


def _jackknife_variance(values: torch.Tensor) -> torch.Tensor:
    n = len(values)
    return (n - 1) / n * (values - values.mean()).square().sum()


def _check_sets(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected two feature sets [n, d] of the same d, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 clips per set, got {len(a)} and {len(b)}")
    return a.detach().double().cpu(), b.detach().double().cpu()


RESIZES = ("tf1", "torch")


def resize_bilinear_tf1(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., H, W] -> [..., h, w] as TF1's tf.image.resize_bilinear (align_corners=False,
    half_pixel_centers=False), the original FVD's resize: output pixel i reads the input at
    i · in/out (float32, no half-pixel offset), between pixels floor and ceil (clamped to the
    last one) with weight frac. Downsampling skips pixels rather than averaging them."""
    left, right, x_weight = _tf1_taps(images.shape[-1], size[1], images.device)
    top, bottom, y_weight = _tf1_taps(images.shape[-2], size[0], images.device)
    # along x, then along y, as TF's kernel does (the same float32 rounding)
    columns = images.index_select(-1, left)
    columns = columns + (images.index_select(-1, right) - columns) * x_weight.to(images.dtype)
    rows = columns.index_select(-2, top)
    return rows + (columns.index_select(-2, bottom) - rows) * y_weight.to(images.dtype)[:, None]


def _tf1_taps(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: the input pixels below and above its source position, and the weight
    of the one above."""
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    source = torch.arange(out_size, dtype=torch.float32) * scale
    lower = source.floor()
    upper = source.ceil().long().clamp_max(in_size - 1)
    return lower.long().to(device), upper.to(device), (source - lower).to(device)


def clips_for_i3d(clips: torch.Tensor, resize: str = "tf1") -> torch.Tensor:
    """[B,T,3,H,W] in [-1,1] -> [B,3,T,224,224] in [-1,1]: 8-bit levels resized (`resize`:
    "tf1" as the original FVD, or "torch", half-pixel bilinear), then mapped to [-1,1]."""
    if clips.ndim != 5 or clips.shape[2] != 3:
        raise ValueError(f"expected clips [B,T,3,H,W], got {tuple(clips.shape)}")
    if clips.shape[1] < MIN_FRAMES:
        raise ValueError(f"FVD needs clips of at least {MIN_FRAMES} frames, got {clips.shape[1]}")
    if resize not in RESIZES:
        raise ValueError(f"the FVD resize must be one of {RESIZES}, got {resize!r}")
    levels = ((clips.float().clamp(-1, 1) + 1) * 127.5).round().flatten(0, 1)
    size = (RESOLUTION, RESOLUTION)
    if tuple(levels.shape[-2:]) != size and resize == "tf1":
        levels = resize_bilinear_tf1(levels, size)
    elif tuple(levels.shape[-2:]) != size:
        levels = F.interpolate(levels, size=size, mode="bilinear", align_corners=False)
    return rearrange(levels / 127.5 - 1, "(b t) c h w -> b c t h w", b=clips.shape[0])


def load_i3d(weights: str | None = None) -> InceptionI3d:
    """The Kinetics-400 I3D with the checkpoint's weights (raises WeightsUnavailable, with
    how to get them, when the file is missing)."""
    network = InceptionI3d()
    network.load_state_dict(state_dict_from_checkpoint(load_variables(weights)))
    return network


class FrechetVideoDistance(Metric):
    """FVD between the real and the generated clips given to `update`, with KVD and a
    jackknife interval. DDP: the per-clip features are states gathered from every process.

    extractor: clips [B,3,T,224,224] -> features [B,d]; default the Kinetics-400 I3D read from
    `weights` (see frgan.metrics.i3d_weights for where it is looked for). resize: how clips
    reach 224 px, "tf1" (the original FVD's) or "torch" (see clips_for_i3d).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        extractor: nn.Module | None = None,
        weights: str | None = None,
        batch_size: int = 8,
        interval: bool = True,
        resize: str = "tf1",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if resize not in RESIZES:
            raise ValueError(f"the FVD resize must be one of {RESIZES}, got {resize!r}")
        self.extractor = extractor if extractor is not None else load_i3d(weights)
        self.extractor.requires_grad_(False).eval()
        self.batch_size, self.interval, self.resize = batch_size, interval, resize
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    @torch.no_grad()
    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] in [-1,1] -> features [B,d] (float32), `batch_size` clips at a time."""
        return torch.cat(
            [
                self.extractor(
                    clips_for_i3d(clips[i : i + self.batch_size].to(self.device), self.resize)
                )
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
        """{"fvd", "fvd_low", "fvd_high", "fvd_se" (95% jackknife interval and its standard
        error; None with interval=False or fewer than 3 clips a side), "kvd", "clips_real",
        "clips_fake"}."""
        real, fake = _gathered(self.real_features), _gathered(self.fake_features)
        if real is None or fake is None:
            raise ValueError("FVD needs real and generated clips; call update() with both first")
        low = high = error = None
        if self.interval and min(len(real), len(fake)) >= 3:
            low, high, error = jackknife_interval(real, fake)
        return {
            "fvd": float(frechet_distance(real, fake)),
            "fvd_low": low,
            "fvd_high": high,
            "fvd_se": error,
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
