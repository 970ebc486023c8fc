"""Part refiners: small networks of their own that repaint one window of the forecast frame —
the mouth, or the eyes with their brows — at full size.

The generator's full-size layers are few and narrow (8 channels in the CPU preset) and shared by
every pixel of the frame, so their gradient is mostly skin and outline: the teeth of a smile, a
band a pixel or two high, are a few pixels among four thousand. A refiner's weights see only
its window, so whatever it learns, it learns for that part. It reads the window of the
composited frame, of the target structure map and of the (warped) source, and edits the frame
there: x ← tanh(atanh(x) + φ·δ), with δ its output, which starts at exactly zero (an untrained
refiner changes nothing), and φ a feather that fades the edit out over the window's border.

Windows are fixed fractions of the frame, not landmark crops, so a refiner needs nothing but
the generator's own inputs (generate, evaluate and the refine stage call it unchanged). They
hold the part in the face crops frgan.prepare makes: on the synthetic set the mouth's landmarks
stay within rows 0.51-0.78 and columns 0.25-0.73 of the frame (1st-99th percentile of every
frame), the eyes' and brows' within rows 0.08-0.39 and columns 0.14-0.85.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from frgan.models.blocks import conv3x3

FEATHER = 4 / 64  # the edit fades out over this fraction of the frame at a window's border


class Window(NamedTuple):
    """A window as fractions of the frame: rows top..bottom, columns left..right."""

    top: float
    bottom: float
    left: float
    right: float


WINDOWS = {
    "mouth": Window(0.375, 0.9375, 0.125, 0.875),
    "eyes_brows": Window(0.0, 0.5, 0.0625, 0.9375),
}


def window_slices(part: str, size: int) -> tuple[slice, slice]:
    """(rows, columns) of a part's window in a frame of `size` px: whole multiples of 4 px, so
    the refiner's half-size level divides evenly."""
    window = WINDOWS[part]

    def pixels(low: float, high: float) -> slice:
        start, stop = (4 * round(f * size / 4) for f in (low, high))
        return slice(start, max(stop, start + 4))

    return pixels(window.top, window.bottom), pixels(window.left, window.right)


def feather(height: int, width: int, size: int, device=None) -> torch.Tensor:
    """[1,1,h,w]: 1 inside, falling linearly to 0 at the window's border over FEATHER·size px."""
    ramp = max(FEATHER * size, 1.0)

    def along(n: int) -> torch.Tensor:
        centres = torch.arange(n, device=device) + 0.5
        return (torch.minimum(centres, n - centres) / ramp).clamp(max=1.0)

    return (along(height)[:, None] * along(width)[None, :])[None, None]


class RefinerBlock(nn.Module):
    """x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class PartRefiner(nn.Module):
    """stem (frame, structure, source: 9 channels) -> width at full size; a block at half size
    (2·width) for reach; back up, joined with the stem; a block; a conv to δ (3 channels)."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = conv3x3(9, width)
        self.down = nn.Conv2d(width, 2 * width, kernel_size=4, stride=2, padding=1)
        self.middle = RefinerBlock(2 * width)
        self.up = conv3x3(2 * width, width)
        self.fine = RefinerBlock(2 * width)
        self.to_edit = conv3x3(2 * width, 3)

    def zero_(self) -> None:
        nn.init.zeros_(self.to_edit.weight)
        nn.init.zeros_(self.to_edit.bias)

    def forward(self, frame, structure, source) -> torch.Tensor:
        """Windows [B,3,h,w] (h, w multiples of 4) -> the edit δ [B,3,h,w]."""
        stem = self.stem(torch.cat([frame, structure, source], dim=1))
        coarse = self.middle(self.down(F.relu(stem)))
        up = self.up(F.relu(F.interpolate(coarse, scale_factor=2, mode="nearest")))
        return self.to_edit(F.relu(self.fine(torch.cat([stem, up], dim=1))))


def refine_parts(
    refiners: nn.ModuleDict,
    frame: torch.Tensor,
    structure: torch.Tensor,
    source: torch.Tensor,
    limit: float,
) -> torch.Tensor:
    """The frame [B,3,S,S] with each refiner's window edited in turn; `limit` keeps atanh
    finite (pixels at exactly ±1)."""
    size = frame.shape[-1]
    for part, refiner in refiners.items():
        rows, cols = window_slices(part, size)
        window = frame[..., rows, cols]
        edit = refiner(window, structure[..., rows, cols], source[..., rows, cols])
        edit = edit * feather(*window.shape[-2:], size, device=frame.device).to(edit.dtype)
        edited = torch.tanh(torch.atanh(window.clamp(-limit, limit)) + edit)
        frame = frame.clone()
        frame[..., rows, cols] = edited
    return frame
