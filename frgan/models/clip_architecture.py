"""Widths and depth of the refine stage's 3D networks (generator and critic).

Space first: the stem already halves height and width (3D convolutions at full size are
the costly ones, on CPUs above all: one 3x3x3 layer over 16 frames of 64x64 costs as much
as the whole rest of the small preset), then `levels` encoder levels halve space and time,
two fewer than stage 1's depth rule (presets.depth_levels) and at least one, so the
bottleneck is 8..14 pixels: a correction of the forecast needs local detail more than a
global code. 64 px -> stem 32 px, 2 levels, 8x8. Time is halved at a level only while the
clip still has >= 4 frames there (16 -> 8 -> 4; odd lengths round up), so any clip length
works.
Width: `base` channels at full size, doubling per level, capped at `max_channels`; the
presets are resolved by presets.resolve_preset, like stage 1's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from frgan.models.presets import depth_levels, resolve_preset


@dataclass(frozen=True)
class RefineWidths:
    base: int  # channels of the full-size stem
    max_channels: int  # cap of the per-level doubling


REFINE_PRESETS: dict[str, RefineWidths] = {
    # GPU scale: stage 1's paper widths (64 at full size, doubling up to 512)
    "paper": RefineWidths(base=64, max_channels=512),
    # CPU default: sized so experiment=two_stage finishes in 30 minutes on 2 cores
    "small": RefineWidths(base=8, max_channels=32),
    # unit tests only
    "tiny": RefineWidths(base=4, max_channels=8),
}


@dataclass(frozen=True)
class ClipArchitecture:
    image_size: int
    channels: tuple[int, ...]  # channels[0] of the stem (half size), channels[k] at level k

    @property
    def levels(self) -> int:
        return len(self.channels) - 1


def clip_architecture(preset: str | Mapping | RefineWidths, image_size: int) -> ClipArchitecture:
    widths = resolve_preset(preset, REFINE_PRESETS, RefineWidths)
    levels = max(1, depth_levels(image_size) - 2)
    channels = tuple(min(widths.base * 2**k, widths.max_channels) for k in range(levels + 1))
    return ClipArchitecture(image_size, channels)


def time_stride(frames: int) -> int:
    """Halve time at a level while at least 4 frames are left (so never below 2)."""
    return 2 if frames >= 4 else 1
