"""Reconstruction terms of the forecast generator beyond the release's plain L1: pure
functions of the generated frame x̂, the target xt and the source x0, per sample [B].

L1 pushes every wrong pixel equally hard, whatever its error, so a few pixels that change a
lot (teeth appearing in a smile, a lid closing) weigh no more than a faint halo: a short run
learns the halo first. The change weight lets the pixels that differ from the source lead;
the gradient term asks for the truth's edges, which a mean over uncertain pixels loses.
"""

from __future__ import annotations

import torch


def change_weighted_l1(
    frame: torch.Tensor, target: torch.Tensor, source: torch.Tensor, weight: float
) -> torch.Tensor:
    """mean over pixels of (1 + weight·c)·|x̂ − xt|, c = |xt − x0| averaged over channels (0
    where the target repeats the source, up to 2): [B]. weight 0 is the plain mean |x̂ − xt|."""
    error = (frame - target).abs()
    if weight:
        change = (target - source).abs().mean(dim=1, keepdim=True)
        error = error * (1 + weight * change)
    return error.mean(dim=(1, 2, 3))


def gradient_difference(frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient difference loss (Mathieu et al. 2016, α = 1): the mean over both directions of
    ||∇x̂| − |∇xt|| (forward differences along x and y), [B]. Zero when x̂'s edges are as strong
    as the truth's wherever they are."""
    terms = [
        (frame.diff(dim=axis).abs() - target.diff(dim=axis).abs()).abs().mean(dim=(1, 2, 3))
        for axis in (-1, -2)
    ]
    return (terms[0] + terms[1]) / 2
