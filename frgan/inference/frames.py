"""Reading the inputs of generate: one source image, and a driver's frames from a video file or
a folder of images (a MUG-layout take is such a folder).

Frames are uint8 RGB [T, H, W, 3]. Folders are read in natural order (frame_2 before frame_10).
Every unusable input is a ValueError / FileNotFoundError naming the path and what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# 16-bit (and 32-bit integer) grey: samples 0..65535
WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass
class DriverFrames:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    folder: Path | None  # the frame folder (where a take keeps ground_truth.npz); None for a video
    frame_ids: list[int] | None  # each frame's number in its file name, when every name has one
    fps: float | None  # the video's frame rate; None for a folder


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value: img2 < img10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """One image file as uint8 RGB [H, W, 3], as a viewer shows it: turned upright by its EXIF
    orientation, 16-bit and floating-point samples scaled to 8 bits, transparent pixels on white."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{what} {path} is a folder, not an image file; give the path of one image file "
            "(a JPEG or PNG)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; give the path of an image file")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"{what} {path} cannot be read as an image ({error}); give a JPEG or PNG file"
        ) from error


def to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a decoded image of any mode.

    PIL's convert("RGB") clips a 16-bit grey image (mode I;16 / I) to white and a floating-point
    one (mode F, samples 0..1) to black instead of scaling them, and drops alpha, showing
    whatever colour transparent pixels happen to hold.
    """
    if image.mode in WIDE_GREY_MODES or image.mode == "F":
        samples = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if image.mode != "F":
            samples = samples / 257.0
        elif samples.max(initial=0.0) <= 1.0:  # floating-point grey: 0..1, else 0..255
            samples = samples * 255.0
        image = Image.fromarray(np.clip(np.rint(samples), 0, 255).astype(np.uint8))  # mode L
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def read_driver(path: str | Path, max_frames: int | None = None) -> DriverFrames:
    """The frames of a video file or of a folder of images (a MUG-layout take included)."""
    path = Path(path)
    if path.is_dir():
        driver = read_frame_folder(path)
    elif path.is_file():
        driver = read_video(path)
    else:
        raise FileNotFoundError(
            f"driver {path} does not exist; give a video file, a folder of frames or a take folder"
        )
    if max_frames is not None:
        driver.frames = driver.frames[:max_frames]
        driver.frame_ids = driver.frame_ids[:max_frames] if driver.frame_ids else None
    return driver


def read_video(path: Path) -> DriverFrames:
    """Every frame of a video file (imageio's pyav plugin: whatever FFmpeg decodes)."""
    import imageio.v3 as iio

    try:
        frames = iio.imread(path, plugin="pyav", index=None)
        fps = iio.immeta(path, plugin="pyav").get("fps")
    except Exception as error:  # noqa: BLE001 — PyAV raises many kinds for a file it cannot decode
        raise ValueError(
            f"driver video {path} cannot be read ({type(error).__name__}: {error}); give a video "
            "file FFmpeg can decode (e.g. MP4) or a folder of frames"
        ) from error
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"driver video {path} has no frames; give a video with at least one frame")
    if frames.shape[-1] != 3:
        frames = frames[..., :3]
    return DriverFrames(np.ascontiguousarray(frames, dtype=np.uint8), None, None, fps)


def read_frame_folder(folder: Path) -> DriverFrames:
    """The folder's image files in natural order, all of one size."""
    paths = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    if not paths:
        raise ValueError(
            f"driver folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}); give a "
            "folder of frames, a take folder or a video file"
        )
    frames = [read_image(p, what="driver frame") for p in paths]
    first = frames[0].shape
    for p, frame in zip(paths, frames, strict=True):
        if frame.shape != first:
            raise ValueError(
                f"driver frame {p} is {frame.shape[1]}x{frame.shape[0]} but {paths[0].name} is "
                f"{first[1]}x{first[0]}; the frames of a driver must all have one size"
            )
    numbers = [re.findall(r"\d+", p.stem) for p in paths]
    frame_ids = [int(n[-1]) for n in numbers] if all(numbers) else None
    return DriverFrames(np.stack(frames), folder, frame_ids, None)
