"""Image quality metrics for frames in [-1, 1], per image, over the full frame or a mask.

The "moving region" of a forecast pair is where the ground truth changes between the
source frame x0 and the target xt: max over channels of |xt − x0| > threshold. The
default threshold 0.1 (5% of the [-1, 1] range, about 13 of 255 grey levels) is above
JPEG noise and catches every visibly moving pixel. Copying x0 is perfect outside that
region, so metrics inside it are the ones that tell whether a model beats copying.

The "rim" is the still pixels within RIM_WIDTH px of the moving region. Copying is nearly
exact there, and that is where a forecast that repaints more than what moves shows halos
(a blurred or recoloured fringe along a moving outline): rim_error, the mean |pred − target|
over the rim, measures them.

All functions return one value per image ([B] float32). An empty mask gives NaN; PSNR of
identical images is +inf. frgan.metrics.registry declares the metrics made of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DATA_RANGE = 2.0  # images live in [-1, 1]
DEFAULT_MOVING_THRESHOLD = 0.1
RIM_WIDTH = 3


def luminance(images: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] in [-1, 1] -> [..., H, W] in [0, 1] (Rec. 601 weights)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return torch.einsum("...chw,c->...hw", (images + 1) / 2, weights)


def moving_mask(
    x0: torch.Tensor, xt: torch.Tensor, threshold: float = DEFAULT_MOVING_THRESHOLD
) -> torch.Tensor:
    """[B,C,H,W] pair -> bool [B,1,H,W], True where any channel changes by more than threshold."""
    return (xt.float() - x0.float()).abs().amax(dim=1, keepdim=True) > threshold


def rim_mask(moving: torch.Tensor, width: int = RIM_WIDTH) -> torch.Tensor:
    """bool [B,1,H,W]: the still pixels within `width` px (chessboard distance) of `moving`."""
    near = F.max_pool2d(moving.float(), 2 * width + 1, stride=1, padding=width) > 0
    return near & ~moving


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over (C,H,W) per image, restricted to mask [B,1,H,W] when given."""
    if mask is None:
        return values.flatten(1).mean(1)
    weights = mask.to(values.dtype).expand_as(values).flatten(1)
    return (values.flatten(1) * weights).sum(1) / weights.sum(1)  # 0/0 = NaN for empty masks


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    data_range: float = DATA_RANGE,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: 10·log10(range² / MSE)."""
    mse = masked_mean((pred.float() - target.float()).square(), mask)
    return 10 * torch.log10(data_range**2 / mse)


def mean_abs_error(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean |pred − target| per image ([-1, 1] units), over the full frame or a mask."""
    return masked_mean((pred.float() - target.float()).abs(), mask)


def _gaussian_blur(x: torch.Tensor, window: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter per channel, reflect padding so the output keeps x's size."""
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    kernel = torch.exp(-coords.square() / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    x = F.pad(x, [window // 2] * 4, mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, window), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, window, 1), groups=channels)


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = DATA_RANGE,
    window: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Per-pixel structural similarity [B,C,H,W] (Wang et al. 2004: Gaussian window 11,
    sigma 1.5, K1 0.01, K2 0.03)."""
    if min(pred.shape[-2:]) <= window // 2:
        raise ValueError(
            f"ssim needs images larger than {window // 2} pixels, got {tuple(pred.shape[-2:])}"
        )
    x, y = pred.float(), target.float()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _gaussian_blur(x, window, sigma), _gaussian_blur(y, window, sigma)
    var_x = _gaussian_blur(x * x, window, sigma) - mu_x.square()
    var_y = _gaussian_blur(y * y, window, sigma) - mu_y.square()
    cov = _gaussian_blur(x * y, window, sigma) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    data_range: float = DATA_RANGE,
) -> torch.Tensor:
    """Mean SSIM per image, over the full frame or the pixels of mask [B,1,H,W]."""
    return masked_mean(ssim_map(pred, target, data_range), mask)
