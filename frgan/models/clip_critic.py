"""Spatio-temporal critic: concat(clip, structure clip) -> one unbounded score per clip."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from frgan.models.blocks3d import DownConv3d, EncoderLevel, conv3d
from frgan.models.clip_architecture import ClipArchitecture, clip_architecture


class ClipCritic(nn.Module):
    """conv3d 6->c0 halving height and width, the encoder levels of the refine generator (LeakyReLU 0.2, no
    normalization: the gradient penalty is per sample), a 3x3x3 conv to one channel and
    the mean over time and space: a score per clip for any clip length (a patch critic
    whose patches see the motion of several frames)."""

    def __init__(self, arch: ClipArchitecture):
        super().__init__()
        ch = arch.channels
        self.stem = DownConv3d(6, ch[0], with_time=False)
        self.levels = nn.Sequential(*(EncoderLevel(ch[k], ch[k + 1]) for k in range(arch.levels)))
        self.to_score = conv3d(ch[-1], 1)

    @classmethod
    def from_preset(cls, preset: str = "small", image_size: int = 64) -> ClipCritic:
        return cls(clip_architecture(preset, image_size))

    def forward(self, clip: torch.Tensor, structures: torch.Tensor) -> torch.Tensor:
        """clip, structures: [B,T,3,H,W] in [-1,1] -> scores [B]."""
        x = rearrange(torch.cat([clip, structures], dim=2), "b t c h w -> b c t h w")
        features = self.levels(torch.nn.functional.leaky_relu(self.stem(x), 0.2))
        return self.to_score(features).mean(dim=(1, 2, 3, 4))
