"""Residual down and up blocks of the FRGAN generator and critic (reference section 2).

Down: y = conv(avgpool(x)) + avgpool(conv(act(conv(act(x)))))      no normalization
Up:   y = conv(up(x)) + conv(relu(bn(conv(up(relu(bn(x)))))))       nearest x2, BatchNorm

All convolutions are 3x3 with bias, exactly as released, so parameter counts and
state dicts match the paper. Two of them are *computed* in a cheaper, mathematically
identical way (same weights, same result up to float rounding):

- conv3x3 after a nearest x2 upsample = a transposed conv (4x4, stride 2) at the low
  resolution: every output pixel sees 2x2 distinct input pixels instead of 3x3;
- 2x2 average pool after a conv3x3 = one conv (4x4, stride 2) at the output resolution.

Both convolve the 3x3 kernel with a 2x2 box into a 4x4 kernel. They matter because the
widest convolutions of the dense decoder (1792 and 2048 input channels at 64 px) are
exactly the upsampling ones: folding makes them 2-3x cheaper. Folding costs one pass
over the weights, which only pays off once the batch has enough pixels; below
FOLD_MIN_PIXELS low-resolution pixels per channel the literal form is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# batch x height x width of the low-resolution side; measured on CPU (batch 8, 1 thread):
# folding loses at 4x4 (128 pixels), breaks even near 8x8 (512), wins 2.4x at 16x16 (2048)
FOLD_MIN_PIXELS = 1024


def _box_fold(weight: torch.Tensor) -> torch.Tensor:
    """[out,in,3,3] -> [out,in,4,4]: the kernel convolved with a 2x2 box of ones."""
    weight = F.pad(weight, (1, 1, 1, 1))
    weight = weight[..., 1:, :] + weight[..., :-1, :]
    return weight[..., :, 1:] + weight[..., :, :-1]


def _worth_folding(batch: int, low_res_height: int, low_res_width: int) -> bool:
    return batch * low_res_height * low_res_width >= FOLD_MIN_PIXELS


def conv3x3_of_upsampled(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv(F.interpolate(x, scale_factor=2, mode="nearest"))`, computed at x's resolution."""
    if not _worth_folding(x.shape[0], x.shape[-2], x.shape[-1]):
        return conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    # a transposed conv applies its kernel flipped; it wants the weight as [in, out, kh, kw]
    kernel = _box_fold(conv.weight).flip(-2, -1).transpose(0, 1)
    return F.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


def avgpool_of_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`F.avg_pool2d(conv(x), 2)`, computed as one strided convolution."""
    if not _worth_folding(x.shape[0], x.shape[-2] // 2, x.shape[-1] // 2):
        return F.avg_pool2d(conv(x), 2)
    return F.conv2d(x, _box_fold(conv.weight) / 4, conv.bias, stride=2, padding=1)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class DownBlock(nn.Module):
    """Halves the size. The activation acts on the main path only; the shortcut sees raw x."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.0):
        super().__init__()
        self.negative_slope = negative_slope  # 0 = ReLU (generator), 0.01 in the critic
        self.conv1 = conv3x3(in_channels, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = conv3x3(in_channels, out_channels)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope) if self.negative_slope else F.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = avgpool_of_conv3x3(self.act(self.conv1(self.act(x))), self.conv2)
        return main + self.shortcut(F.avg_pool2d(x, 2))


class UpBlock(nn.Module):
    """Doubles the size (nearest), pre-activation with BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = conv3x3(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = conv3x3_of_upsampled(F.relu(self.norm1(x)), self.conv1)
        main = self.conv2(F.relu(self.norm2(hidden)))
        return main + conv3x3_of_upsampled(x, self.shortcut)
