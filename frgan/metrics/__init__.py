"""Metrics as pure functions: image quality (PSNR, SSIM, moving region, rim error, face
regions) and video quality (temporal error, flicker); frgan.metrics.registry declares each
metric once and scores frames and clips with all of them."""

from frgan.metrics.image import (
    DATA_RANGE,
    DEFAULT_MOVING_THRESHOLD,
    RIM_WIDTH,
    masked_mean,
    mean_abs_error,
    moving_mask,
    psnr,
    rim_mask,
    ssim,
    ssim_map,
)
from frgan.metrics.registry import CLIP, FRAME, Metric, frame_quality, score_clip
from frgan.metrics.video import flicker, temporal_error

__all__ = [
    "CLIP",
    "DATA_RANGE",
    "DEFAULT_MOVING_THRESHOLD",
    "FRAME",
    "RIM_WIDTH",
    "Metric",
    "flicker",
    "frame_quality",
    "masked_mean",
    "mean_abs_error",
    "moving_mask",
    "psnr",
    "rim_mask",
    "score_clip",
    "ssim",
    "ssim_map",
    "temporal_error",
]
