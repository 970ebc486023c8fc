"""The released initialization: conv and linear weights N(0, 0.02), linear biases 0,
BatchNorm weight N(1, 0.02), bias 0. Conv biases keep PyTorch's default, as released."""

from __future__ import annotations

from torch import nn


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialize every conv, linear and batch-norm layer under `module` in place."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, 0.0, std)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)
