"""Width presets and the depth rule shared by the generator and the critic.

Depth: halve the image size while it is >= 8 (reference section 2), so the bottleneck is
4..7 pixels: 64 px -> 4 levels (4x4), 96 px -> 4 levels (6x6), 128 px -> 5 levels (4x4).
Every halving must be exact; other sizes are refused.
Width: `base` channels at full size, doubling per level, capped at `max_channels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from frgan.errors import ConfigError


@dataclass(frozen=True)
class WidthPreset:
    base: int  # channels of the full-size stem
    max_channels: int  # cap of the per-level doubling
    latent: int  # size of the codes z (h_dim)


PRESETS: dict[str, WidthPreset] = {
    # the released sizes exactly (G 70,326,596 / D 13,286,977 parameters at 64 px)
    "paper": WidthPreset(base=64, max_channels=512, latent=128),
    # CPU default: trains usefully on 2 cores in minutes at 64 px
    "small": WidthPreset(base=8, max_channels=64, latent=64),
    # unit tests only
    "tiny": WidthPreset(base=4, max_channels=8, latent=8),
}


@dataclass(frozen=True)
class Architecture:
    """Everything the networks need to know about their shape."""

    image_size: int
    channels: tuple[int, ...]  # channels[0] at full size, channels[k] after k halvings
    bottleneck: int  # spatial size after the last halving
    latent: int

    @property
    def levels(self) -> int:
        return len(self.channels) - 1

    def size(self, level: int) -> int:
        return self.bottleneck * 2 ** (self.levels - level)


def supported_image_sizes(up_to: int = 256) -> list[int]:
    """All sizes the depth rule accepts: bottleneck b in 4..7 times 2**levels, levels >= 1."""
    sizes = {b * 2**levels for b in range(4, 8) for levels in range(1, 16)}
    return sorted(s for s in sizes if s <= up_to)


def depth_levels(image_size: int) -> int:
    """Number of halvings of `image_size`; raises ConfigError if a halving is not exact."""
    size, levels = image_size, 0
    is_int = isinstance(image_size, int) and not isinstance(image_size, bool)
    while is_int and size >= 8 and size % 2 == 0:
        size, levels = size // 2, levels + 1
    if levels == 0 or size >= 8:
        valid = ", ".join(map(str, supported_image_sizes()))
        raise ConfigError(
            f"model.image_size={image_size!r} is not supported: the networks halve the size while "
            f"it is >= 8 and every halving must be exact. Valid sizes up to 256: {valid}."
        )
    return levels


def resolve_preset(
    preset: str | Mapping | WidthPreset,
    presets: Mapping[str, Any] = PRESETS,
    kind: type = WidthPreset,
):
    """A preset name of `presets`, or custom widths as a mapping of `kind`'s fields (a
    frozen dataclass of positive integers: WidthPreset here, RefineWidths for stage 2)."""
    if isinstance(preset, kind):
        return preset
    if isinstance(preset, Mapping):
        names = {f.name for f in fields(kind)}
        if set(preset) != names or not all(isinstance(v, int) and v >= 1 for v in preset.values()):
            raise ConfigError(
                f"model.preset={dict(preset)} is not a valid custom preset: give positive integers "
                f"for exactly {sorted(names)}, or a preset name: {', '.join(presets)}."
            )
        return kind(**preset)
    if preset not in presets:
        raise ConfigError(
            f"model.preset={preset!r} is unknown; valid presets: {', '.join(presets)}."
        )
    return presets[preset]


def architecture(preset: str | Mapping | WidthPreset, image_size: int) -> Architecture:
    widths = resolve_preset(preset)
    levels = depth_levels(image_size)
    channels = tuple(min(widths.base * 2**k, widths.max_channels) for k in range(levels + 1))
    return Architecture(image_size, channels, image_size // 2**levels, widths.latent)
