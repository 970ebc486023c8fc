"""Temporal consistency of generated clips [B,T,C,H,W] in [-1, 1], one value per clip.

temporal error: mean |(x̂_t − x̂_{t−1}) − (x_t − x_{t−1})| over t = 1..T−1 and every pixel:
    how far the generated frame-to-frame change is from the true one.
flicker: the same, over the static region only (pixels whose ground truth does not change
    between t−1 and t by more than `threshold`): change where nothing should change.
Lower is better for both; copying the first frame has zero flicker by construction.
"""

from __future__ import annotations

import torch

from frgan.metrics.image import DEFAULT_MOVING_THRESHOLD


def _frame_differences(
    pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] < 2:
        raise ValueError(
            f"expected two clips [B,T,C,H,W] of the same shape with T >= 2, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    pred, target = pred.float(), target.float()
    return pred.diff(dim=1), target.diff(dim=1)


def temporal_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B]: mean absolute difference between generated and true frame-to-frame changes."""
    pred_change, true_change = _frame_differences(pred, target)
    return (pred_change - true_change).abs().flatten(1).mean(1)


def flicker(
    pred: torch.Tensor, target: torch.Tensor, threshold: float = DEFAULT_MOVING_THRESHOLD
) -> torch.Tensor:
    """[B]: temporal error over the static region; NaN for a clip with no static pixel."""
    pred_change, true_change = _frame_differences(pred, target)
    static = (true_change.abs().amax(dim=2, keepdim=True) <= threshold).expand_as(pred_change)
    weights = static.to(pred_change.dtype).flatten(1)
    error = (pred_change - true_change).abs().flatten(1)
    return (error * weights).sum(1) / weights.sum(1)
