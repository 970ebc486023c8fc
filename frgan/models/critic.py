"""WGAN critic: concat(image, target structure) -> one unbounded score per sample."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from frgan.models.blocks import DownBlock, conv3x3
from frgan.models.presets import Architecture, architecture


class Critic(nn.Module):
    """conv 6->c0, down blocks with LeakyReLU(0.01), flatten, linear -> 1.
    No normalization (the gradient penalty is per sample) and no sigmoid."""

    def __init__(self, arch: Architecture):
        super().__init__()
        ch = arch.channels
        self.arch = arch
        self.stem = conv3x3(6, ch[0])
        self.blocks = nn.Sequential(
            *(DownBlock(ch[k], ch[k + 1], negative_slope=0.01) for k in range(arch.levels))
        )
        self.to_score = nn.Linear(ch[-1] * arch.bottleneck**2, 1)

    @classmethod
    def from_preset(cls, preset: str = "paper", image_size: int = 64) -> Critic:
        return cls(architecture(preset, image_size))

    def forward(self, image: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        """image, structure: [B,3,H,W] in [-1,1] -> scores [B]."""
        features = self.blocks(self.stem(torch.cat([image, structure], dim=1)))
        return self.to_score(rearrange(features, "b c h w -> b (c h w)")).squeeze(1)
