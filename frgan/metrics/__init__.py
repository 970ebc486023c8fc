"""Metrics as pure functions: image quality (PSNR, SSIM, moving region, rim error) and video
quality (temporal error, flicker)."""

from frgan.metrics.image import (
    DATA_RANGE,
    DEFAULT_MOVING_THRESHOLD,
    FRAME_METRICS,
    RIM_WIDTH,
    frame_quality,
    mean_abs_error,
    moving_mask,
    psnr,
    rim_mask,
    ssim,
    ssim_map,
)
from frgan.metrics.video import flicker, temporal_error

__all__ = [
    "DATA_RANGE",
    "DEFAULT_MOVING_THRESHOLD",
    "FRAME_METRICS",
    "RIM_WIDTH",
    "flicker",
    "frame_quality",
    "mean_abs_error",
    "moving_mask",
    "psnr",
    "rim_mask",
    "ssim",
    "ssim_map",
    "temporal_error",
]
