"""Metrics as pure functions: image quality (PSNR, SSIM, moving region) and video quality
(temporal error, flicker)."""

from frgan.metrics.image import (
    DATA_RANGE,
    DEFAULT_MOVING_THRESHOLD,
    frame_quality,
    moving_mask,
    psnr,
    ssim,
    ssim_map,
)
from frgan.metrics.video import flicker, temporal_error

__all__ = [
    "DATA_RANGE",
    "DEFAULT_MOVING_THRESHOLD",
    "flicker",
    "frame_quality",
    "moving_mask",
    "psnr",
    "ssim",
    "ssim_map",
    "temporal_error",
]
