"""Exponential moving average of a network's weights (a smoother generator for sampling)."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """Ramp the decay up over the first steps so early averages are not stuck at the init."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay·average + (1 − decay)·model for parameters; buffers (BatchNorm
    statistics) are copied, since averaging running statistics is meaningless."""
    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1.0 - decay)
    for average_buffer, buffer in zip(average.buffers(), model.buffers(), strict=True):
        average_buffer.copy_(buffer)
