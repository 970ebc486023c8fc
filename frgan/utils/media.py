"""Pictures and videos people look at: conversion to uint8 and atomic PNG / GIF / MP4 writers.

Frames are uint8 arrays [H,W,3] (one image) or [T,H,W,3] (a video). Every writer goes
through `frgan.utils.files.atomic_path`, so a killed run never leaves half a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange
from PIL import Image

from frgan.utils.files import atomic_path

CAPTION_HEIGHT = 16  # pixels of a caption strip


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[..., 3, H, W] in [-1, 1] -> [..., H, W, 3] uint8 (channels last, on the CPU)."""
    images = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return rearrange(images, "... c h w -> ... h w c").numpy()


def side_by_side(columns: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate images [..., C, H, W] along the width; 1-channel maps become grey RGB."""
    return torch.cat([c.float().expand(*c.shape[:-3], 3, *c.shape[-2:]) for c in columns], dim=-1)


def caption(text: str, width: int, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """A white strip uint8 [height, width, 3] with `text` in black, to label a row or column."""
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(
        strip, text, (2, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA
    )
    return strip


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """PNG (or any format Pillow knows from the suffix) of a uint8 [H,W,3] image."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(_check_frames(image, ndim=3)).save(tmp)
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Looping animated GIF; fast octree palettes (Pillow's default quantizer is ~30x slower)."""
    path = Path(path)
    frames = _check_frames(frames, ndim=4)
    images = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return path


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere); frames are padded by edge to even sizes."""
    import imageio.v3 as iio

    path = Path(path)
    frames = _check_frames(frames, ndim=4)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(path) as tmp:
        iio.imwrite(
            tmp, frames, plugin="pyav", codec="libx264", fps=fps, out_pixel_format="yuv420p"
        )
    return path


def _check_frames(frames: np.ndarray, ndim: int) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != ndim or frames.shape[-1] != 3:
        shape = "[H,W,3]" if ndim == 3 else "[T,H,W,3]"
        raise ValueError(f"expected uint8 frames {shape}, got {frames.dtype} {tuple(frames.shape)}")
    if ndim == 4 and len(frames) == 0:
        raise ValueError("cannot write a video of 0 frames")
    return np.ascontiguousarray(frames)
