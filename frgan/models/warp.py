"""Backward warping of an image by a dense flow field (bilinear, border-clamped)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image [B,C,H,W], flow [B,2,H,W] in pixels (x, y): out[p] = image[p + flow[p]]."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=image.device, dtype=flow.dtype),
        torch.arange(width, device=image.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # pixel centres to grid_sample's [-1, 1] (align_corners=False: -1 is the left edge)
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
