"""Encoder: image (or structure map) -> code z and the skip features of every level."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from frgan.models.blocks import DownBlock, conv3x3
from frgan.models.presets import Architecture


class Encoder(nn.Module):
    """conv 3->c0 at full size (skip 0, no activation), then one down block per level
    (skip k at size/2**k), flatten, linear -> latent (no activation)."""

    def __init__(self, arch: Architecture, in_channels: int = 3):
        super().__init__()
        ch = arch.channels
        self.stem = conv3x3(in_channels, ch[0])
        self.blocks = nn.ModuleList(DownBlock(ch[k], ch[k + 1]) for k in range(arch.levels))
        self.to_code = nn.Linear(ch[-1] * arch.bottleneck**2, arch.latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = [self.stem(x)]
        for block in self.blocks:
            skips.append(block(skips[-1]))
        code = self.to_code(rearrange(skips[-1], "b c h w -> b (c h w)"))
        return code, skips
