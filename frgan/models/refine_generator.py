"""Refine generator R(forecast clip, structure clip, source frame) -> refined clip.

A 3D-convolutional encoder-decoder (U-Net) over clips [B,T,3,H,W]: its input is the
forecast, the structure maps and the source frame broadcast over time (9 channels). The
stem halves height and width (space first), every encoder level halves them again, and
time while >= 4 frames are left; the decoder upsamples to each skip's exact size, so any
clip length works, odd ones included. The head sees the decoder's output upsampled to full
size beside the 9 input channels, so full-size detail comes straight from the forecast.

The output is a correction of the forecast, never a new picture from scratch:
  "mask":     x = w·r + (1 − w)·forecast   (as in stage 1; w starts near 0)
  "additive": x = clamp(forecast + Δ, −1, 1), Δ = tanh(·) (the head starts at 0, so Δ = 0)
Either way an untrained refiner returns (nearly) the forecast.

Optionally (smoothing = a number) the correction applies to a temporal low-pass of the
forecast instead, base = forecast + a·(mean of the neighbouring frames − forecast), with a
learnt strength a starting at `smoothing` (0: exactly the forecast). The stage-1 forecasts are
made frame by frame, so their errors change from frame to frame; the low-pass removes part of
that flicker in one parameter, a path that zero-initialised convolutions need many steps to
learn.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from frgan.errors import ConfigError
from frgan.models.blocks3d import DecoderLevel, DownConv3d, EncoderLevel, conv3d
from frgan.models.clip_architecture import ClipArchitecture, clip_architecture
from frgan.models.generator import composite
from frgan.utils.checks import check_choice

OUTPUTS = ("mask", "additive")
MASK_BIAS = -4.0  # sigmoid(-4) = 0.018: the refiner starts by keeping the forecast


class Refined(NamedTuple):
    clip: torch.Tensor  # x [B,T,3,H,W] in [-1,1]
    correction: torch.Tensor  # r (mask output) or Δ (additive) [B,T,3,H,W]
    mask: torch.Tensor | None  # w [B,T,1,H,W] in [0,1] for the mask output, else None


class RefineGenerator(nn.Module):
    def __init__(
        self, arch: ClipArchitecture, output: str = "mask", smoothing: float | None = None
    ):
        super().__init__()
        check_choice("model.output", output, OUTPUTS)
        if smoothing is not None and not 0.0 <= smoothing <= 1.0:
            raise ConfigError(
                f"model.forecast_smoothing must be in [0, 1] or null, got {smoothing!r}"
            )
        # registered only when used, so checkpoints without it keep loading
        self.smoothing = None if smoothing is None else nn.Parameter(torch.tensor(float(smoothing)))
        ch = arch.channels
        self.arch, self.output = arch, output
        self.stem = DownConv3d(9, ch[0], with_time=False)
        self.encoder = nn.ModuleList(EncoderLevel(ch[k], ch[k + 1]) for k in range(arch.levels))
        self.decoder = nn.ModuleList(
            DecoderLevel(ch[k + 1], ch[k], ch[k]) for k in reversed(range(arch.levels))
        )
        self.head = conv3d(ch[0] + 9, 4 if output == "mask" else 3)
        with torch.no_grad():
            if output == "mask":
                self.head.bias[3].fill_(MASK_BIAS)
            else:
                self.head.weight.zero_()
                self.head.bias.zero_()

    @classmethod
    def from_preset(
        cls,
        preset: str = "small",
        image_size: int = 64,
        output: str = "mask",
        smoothing: float | None = None,
    ) -> RefineGenerator:
        return cls(clip_architecture(preset, image_size), output, smoothing)

    def forward(
        self, forecast: torch.Tensor, structures: torch.Tensor, x0: torch.Tensor
    ) -> Refined:
        """forecast, structures [B,T,3,H,W], source frame x0 [B,3,H,W], all in [-1,1]."""
        frames = forecast.shape[1]
        source = repeat(x0, "b c h w -> b c t h w", t=frames)
        clips = rearrange(torch.cat([forecast, structures], dim=2), "b t c h w -> b c t h w")
        inputs = torch.cat([clips, source], dim=1)
        skips = [F.leaky_relu(self.stem(inputs), 0.2)]
        for level in self.encoder:
            skips.append(level(skips[-1]))
        x = skips.pop()
        for level in self.decoder:
            x = level(x, skips.pop())
        x = F.interpolate(x, size=inputs.shape[2:], mode="nearest")
        head = rearrange(self.head(torch.cat([x, inputs], dim=1)), "b c t h w -> b t c h w")
        base = forecast
        if self.smoothing is not None:
            base = forecast + self.smoothing.clamp(0.0, 1.0) * (neighbour_mean(forecast) - forecast)
        if self.output == "mask":
            residual, mask = torch.tanh(head[:, :, :3]), torch.sigmoid(head[:, :, 3:])
            return Refined(composite(residual, mask, base), residual, mask)
        delta = torch.tanh(head)
        return Refined((base + delta).clamp(-1.0, 1.0), delta, None)


def neighbour_mean(clip: torch.Tensor) -> torch.Tensor:
    """[B,T,...]: the mean of frames t−1 and t+1 at every t (the end frames repeated)."""
    padded = torch.cat([clip[:, :1], clip, clip[:, -1:]], dim=1)
    return (padded[:, :-2] + padded[:, 2:]) / 2
