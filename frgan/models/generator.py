"""Forecast generator G(x0, s0, st) -> x̂t (reference section 2).

Two encoders: one for the source image, one shared by the source and target structure
maps. Latent analogy z' = z_img + (z_st - z_s0). A dense U-Net decoder: the input of every
level is the concatenation of the skips of all three encoder passes at that size (image,
target structure, source structure) and of every earlier decoder output, the code's
projection f included, nearest-upsampled to that size (channel order as released, so the
released weights map one to one). The head paints a residual image r
and a mask w, and the result copies the source wherever w = 0:  x̂ = w·r + (1 − w)·x0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from frgan.models.blocks import UpBlock, conv3x3
from frgan.models.encoder import Encoder
from frgan.models.presets import Architecture, architecture


class Forecast(NamedTuple):
    frame: torch.Tensor  # x̂t [B,3,H,W] in [-1,1]
    residual: torch.Tensor  # r [B,3,H,W] in [-1,1]
    mask: torch.Tensor  # w [B,1,H,W] in [0,1]


def composite(residual: torch.Tensor, mask: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """x̂ = w·r + (1 − w)·x0: pixels with w = 0 are copied from the source frame."""
    return mask * residual + (1 - mask) * source


def upsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    factor = size // x.shape[-1]
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


class Generator(nn.Module):
    def __init__(self, arch: Architecture):
        super().__init__()
        ch, levels = arch.channels, arch.levels
        self.arch = arch
        self.image_encoder = Encoder(arch)
        self.structure_encoder = Encoder(arch)
        self.from_code = nn.Linear(arch.latent, ch[-1] * arch.bottleneck**2)

        # up block k goes from level k to level k-1; its input: 3 skips + all earlier outputs
        self.up_blocks = nn.ModuleList()
        earlier_channels = ch[-1]  # f
        for k in range(levels, 0, -1):
            self.up_blocks.append(UpBlock(3 * ch[k] + earlier_channels, ch[k - 1]))
            earlier_channels += ch[k - 1]

        self.head_norm = nn.BatchNorm2d(ch[0])
        self.to_mask = conv3x3(4 * ch[0], 1)
        self.to_residual = conv3x3(4 * ch[0], 3)

    @classmethod
    def from_preset(cls, preset: str = "paper", image_size: int = 64) -> Generator:
        return cls(architecture(preset, image_size))

    def forward(self, x0: torch.Tensor, s0: torch.Tensor, st: torch.Tensor) -> Forecast:
        """x0 source frame, s0 its structure map, st target structure map: [B,3,H,W] in [-1,1]."""
        z_image, image_skips = self.image_encoder(x0)
        # one pass of the shared encoder over both structure maps (it has no batch norm)
        z_structure, structure_skips = self.structure_encoder(torch.cat([st, s0]))
        z_target, z_source = z_structure.chunk(2)
        code = z_image + (z_target - z_source)

        # skips[k] = image, target structure, source structure features at level k
        skips = [
            torch.cat([img, *s.chunk(2)], dim=1)
            for img, s in zip(image_skips, structure_skips, strict=True)
        ]

        f = rearrange(
            self.from_code(code),
            "b (c h w) -> b c h w",
            h=self.arch.bottleneck,
            w=self.arch.bottleneck,
        )
        outputs = [f]
        for k, block in zip(range(self.arch.levels, 0, -1), self.up_blocks, strict=True):
            size = self.arch.size(k)
            outputs.append(
                block(torch.cat([skips[k], *(upsample_to(o, size) for o in outputs)], dim=1))
            )

        features = torch.cat([skips[0], F.relu(self.head_norm(outputs[-1]))], dim=1)
        mask = torch.sigmoid(self.to_mask(features))
        residual = torch.tanh(self.to_residual(features))
        return Forecast(composite(residual, mask, x0), residual, mask)
