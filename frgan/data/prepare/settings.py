"""The preparation settings: everything that decides the content of the shards."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from frgan.data.landmarks import SOURCE_NAMES
from frgan.data.smoothing import SMOOTHING_METHODS, smoother
from frgan.data.topology import check_source

SUPPORTED_IMAGE_SIZES = (64, 96, 128)


def check_image_size(image_size: int) -> int:
    if int(image_size) not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"data.image_size must be one of {SUPPORTED_IMAGE_SIZES} (the paper's sizes), got {image_size}."
        )
    return int(image_size)


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides the content of the shards (hashed into the manifest)."""

    image_size: int = 64
    landmarks: str = "ground_truth"
    landmark_options: dict = field(default_factory=dict)
    crop_follow: bool = False  # False: one box from the first frame (paper); True: per-frame boxes
    crop_smoothing_window: int = 9  # frames of the centred moving average of followed boxes
    crop_border: str = "edge"  # padding where the box leaves the image: edge | black
    expressions: tuple[str, ...] | None = None
    split_method: str = "fractions"  # or "paper" (MUG subject lists)
    split_fractions: dict = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    split_seed: int = 0
    takes_per_shard: int = 32
    image_format: str = "jpg"
    jpeg_quality: int = 95
    max_repaired_fraction: float = 0.25
    structure_mesh: str = "face68"  # data.structure_mesh: face68 | mesh468 (frgan/data/topology.py)
    landmark_smoothing: str = (
        "none"  # none | one_euro | savgol, over each take (frgan/data/smoothing.py)
    )
    landmark_smoothing_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the settings up front: a bad value is one config error, not every take skipped."""
        check_image_size(self.image_size)
        choices = {
            "landmarks": SOURCE_NAMES,
            "crop_border": ("edge", "black"),
            "split_method": ("fractions", "paper"),
            "image_format": ("jpg", "png"),
            "landmark_smoothing": SMOOTHING_METHODS,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"data.prepare.{key} must be one of {allowed}, got {getattr(self, key)!r}"
                )
        if self.crop_smoothing_window < 1 or self.crop_smoothing_window % 2 == 0:
            raise ValueError(
                f"data.prepare.crop_smoothing_window must be odd and >= 1, got {self.crop_smoothing_window}"
            )
        if self.takes_per_shard < 1 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("data.prepare.takes_per_shard must be >= 1 and jpeg_quality in 1..100")
        if not 0.0 <= self.max_repaired_fraction < 1.0:
            raise ValueError(
                f"data.prepare.max_repaired_fraction must be in [0, 1), got {self.max_repaired_fraction}"
            )
        check_source(self.structure_mesh, self.landmarks)
        smoother(
            self.landmark_smoothing, **self.landmark_smoothing_options
        )  # bad options: error now

    def as_dict(self) -> dict:
        """The settings as JSON values; the mesh and smoothing keys only when not at their
        defaults, so shards prepared before they existed keep their digest."""
        values = json.loads(json.dumps(self.__dict__, default=list))
        for key, default in DEFAULTS_LEFT_OUT.items():
            if values.get(key) == default:
                del values[key]
        return values

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


DEFAULTS_LEFT_OUT = {
    "structure_mesh": "face68",
    "landmark_smoothing": "none",
    "landmark_smoothing_options": {},
}
