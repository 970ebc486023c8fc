"""Conv3d building blocks of the refine stage, over clips [B,C,T,H,W]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frgan.models.clip_architecture import time_stride


def conv3d(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)


class DownConv3d(nn.Conv3d):
    """3x3x3 conv that halves height and width, and (with_time) time while >= 4 frames are
    left (odd lengths round up): the stride follows the clip, so any length T works."""

    def __init__(self, in_channels: int, out_channels: int, with_time: bool = True):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)
        self.with_time = with_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride = (time_stride(x.shape[2]) if self.with_time else 1, 2, 2)
        return F.conv3d(x, self.weight, self.bias, stride=stride, padding=1)


class EncoderLevel(nn.Module):
    """Down-convolution then a 3x3x3 conv, LeakyReLU after each."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = negative_slope
        self.down = DownConv3d(in_channels, out_channels)
        self.conv = conv3d(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.down(x), self.negative_slope)
        return F.leaky_relu(self.conv(x), self.negative_slope)


class DecoderLevel(nn.Module):
    """Nearest upsampling to the skip's exact size (T, H, W), concatenation with the skip,
    two 3x3x3 convs with LeakyReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = conv3d(in_channels + skip_channels, out_channels)
        self.conv2 = conv3d(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
        x = F.leaky_relu(self.conv1(torch.cat([x, skip], dim=1)), 0.2)
        return F.leaky_relu(self.conv2(x), 0.2)
