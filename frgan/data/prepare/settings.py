"""The preparation settings: everything that decides the content of the shards."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from frgan.data.landmarks import SOURCE_NAMES
from frgan.data.smoothing import SMOOTHING_METHODS, smoother
from frgan.data.topology import check_source

SUPPORTED_IMAGE_SIZES = (64, 96, 128)
# fractions (seeded), paper (MUG subject lists), listing (the split column of a video listing)
SPLIT_METHODS = ("fractions", "paper", "listing")


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
    split_method: str = "fractions"  # SPLIT_METHODS
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
    videos: dict | None = None  # data=videos: VideoSettings' keys; None: a MUG-layout folder

    def __post_init__(self) -> None:
        """Check the settings up front: a bad value is one config error, not every take skipped."""
        check_image_size(self.image_size)
        choices = {
            "landmarks": SOURCE_NAMES,
            "crop_border": ("edge", "black"),
            "split_method": SPLIT_METHODS,
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
        if self.videos is not None:  # stored with every key, so the digest ignores spelling
            object.__setattr__(self, "videos", asdict(self.video_settings()))
        elif self.split_method == "listing":
            raise ValueError(
                "data.prepare.split_method=listing needs data=videos with data.prepare.videos.listing"
            )

    def video_settings(self) -> VideoSettings:
        """The checked video options (data=videos); ValueError naming an unknown key."""
        try:
            return VideoSettings(**self.videos)
        except TypeError as error:
            raise ValueError(
                f"Unknown key in data.prepare.videos ({error}); known keys: "
                f"{sorted(VideoSettings.__dataclass_fields__)}"
            ) from error

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
    "videos": None,
}


@dataclass(frozen=True)
class VideoSettings:
    """How video files and frame folders become takes (data.prepare.videos)."""

    subject_level: int = 0  # which part of a source's path (relative to raw_dir) names the subject
    label_level: int | None = None  # which part names the label (expression); None: no labels
    listing: str | None = (
        None  # CSV or JSON listing path, subject[, label, split] instead of levels
    )
    fps: float | None = 25.0  # frame rate of the takes; None: each source's own
    frame_folder_fps: float = 25.0  # the frame rate a folder of frames was recorded at
    take_frames: int = 64  # longer stretches are cut into windows of this many frames
    min_take_frames: int = 16  # a shorter stretch is rejected as too short
    cut_threshold: float = 0.4  # histogram distance between frames that counts as a shot cut
    min_face_size: float = 32.0  # smallest face (landmarks' box side, source pixels) kept

    def __post_init__(self) -> None:
        for key in ("subject_level", "take_frames", "min_take_frames"):
            if not isinstance(getattr(self, key), int) or isinstance(getattr(self, key), bool):
                raise ValueError(
                    f"data.prepare.videos.{key} must be an integer, got {getattr(self, key)!r}"
                )
        if self.label_level is not None and (
            not isinstance(self.label_level, int) or isinstance(self.label_level, bool)
        ):
            raise ValueError(
                f"data.prepare.videos.label_level must be an integer or null, got {self.label_level!r}"
            )
        if not 2 <= self.min_take_frames <= self.take_frames:
            raise ValueError(
                "data.prepare.videos needs 2 <= min_take_frames <= take_frames, got "
                f"min_take_frames={self.min_take_frames}, take_frames={self.take_frames}"
            )
        for key in ("fps", "frame_folder_fps"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(
                    f"data.prepare.videos.{key} must be a positive number, got {value!r}"
                )
        if not 0.0 < self.cut_threshold <= 1.0:
            raise ValueError(
                f"data.prepare.videos.cut_threshold must be in (0, 1], got {self.cut_threshold!r}"
            )
        if self.min_face_size < 0:
            raise ValueError(
                f"data.prepare.videos.min_face_size must be >= 0, got {self.min_face_size!r}"
            )
