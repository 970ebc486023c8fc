"""Reconstruction terms of the forecast generator beyond the release's plain L1: pure
functions of the generated frame x̂, the target xt and the source x0, per sample [B].

L1 pushes every wrong pixel equally hard, whatever its error, so a few pixels that change a
lot (teeth appearing in a smile, a lid closing) weigh no more than a faint halo: a short run
learns the halo first. The change weight lets the pixels that differ from the source lead; the
opening weight lets the pixels inside the target's mouth opening lead (teeth and cavity are a
few dozen pixels of a 64 px frame, in a few frames in ten); the gradient term asks for the
truth's edges, which a mean over uncertain pixels loses; the structural dissimilarity asks for
the truth's local contrast and structure (a smile's teeth band is, at 64 px, on average the
colour of the lips: only its contrast tells it apart, docs/expression/mouth_colours.md).
"""

from __future__ import annotations

import torch

from frgan.metrics.image import ssim


def weighted_l1(
    frame: torch.Tensor,
    target: torch.Tensor,
    source: torch.Tensor,
    change_weight: float = 0.0,
    opening: torch.Tensor | None = None,
    opening_weight: float = 0.0,
) -> torch.Tensor:
    """mean over pixels of (1 + κ·c + ω·o)·|x̂ − xt|: [B]. c = |xt − x0| averaged over channels
    (0 where the target repeats the source, up to 2), weighted κ = change_weight; o the bool
    mask [B,1,H,W] `opening` (the target's mouth opening), weighted ω = opening_weight. Both
    weights 0 give the plain mean |x̂ − xt|."""
    error = (frame - target).abs()
    weight = torch.ones_like(error[:, :1])
    if change_weight:
        weight = weight + change_weight * (target - source).abs().mean(dim=1, keepdim=True)
    if opening_weight:
        weight = weight + opening_weight * opening.to(error.dtype)
    return (error * weight).mean(dim=(1, 2, 3))


def gradient_difference(frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient difference loss (Mathieu et al. 2016, α = 1): the mean over both directions of
    ||∇x̂| − |∇xt|| (forward differences along x and y), [B]. Zero when x̂'s edges are as strong
    as the truth's wherever they are."""
    terms = [
        (frame.diff(dim=axis).abs() - target.diff(dim=axis).abs()).abs().mean(dim=(1, 2, 3))
        for axis in (-1, -2)
    ]
    return (terms[0] + terms[1]) / 2


def structural_dissimilarity(frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − SSIM per image (Wang et al. 2004, the metric's Gaussian window): [B], 0 for x̂ = xt.
    Unlike L1 it is low only where x̂ has the truth's local contrast, not just its mean."""
    return 1 - ssim(frame, target)
