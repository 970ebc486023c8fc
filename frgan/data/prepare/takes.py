"""One raw take (a MUG-layout frame folder) -> shard members.

Load frames -> validate/repair -> landmarks -> crop -> resize -> encode. A take that cannot
be used is a TakeResult with the reason it was skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from frgan.data.crop import crop_boxes, crop_frames, landmarks_to_crop
from frgan.data.errors import LandmarkSourceUnavailable
from frgan.data.landmarks import build_landmark_source
from frgan.data.layout import Take
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.shards import TakeSample, encode_take
from frgan.data.smoothing import smoother

# A frame whose pixels vary less than this (standard deviation, 0..255) is blank: a flat grey,
# black or white picture (a capture glitch), never a face, whatever the landmark source says.
BLANK_FRAME_STD = 4.0


@dataclass
class TakeResult:
    take: str  # subject/expression/take, as in the manifest
    key: str
    members: dict[str, bytes] | None  # None when skipped
    frames: int = 0
    skipped: str | None = None
    repairs: list[str] = field(default_factory=list)
    rejected_frames: int | None = None  # data=videos: frames of a rejected stretch


# ---------------------------------------------------------------- one take


def load_frame(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()  # raises on truncated data instead of returning a half-grey frame
        return np.asarray(image.convert("RGB"))


def _describe(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:10]) + (" ..." if len(numbers) > 10 else "")


def load_take_frames(take: Take) -> tuple[list[int], np.ndarray, list[str]]:
    """Readable frames of the majority size: (their frame numbers, uint8 [N,H,W,3], notes)."""
    numbers, frames, notes = [], [], []
    for number, path in zip(take.frame_numbers, take.frame_paths, strict=True):
        try:
            frames.append(load_frame(path))
            numbers.append(number)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            notes.append(f"frame {number} unreadable ({type(error).__name__}: {error})")
    if frames:
        sizes = Counter(frame.shape for frame in frames)
        majority = sizes.most_common(1)[0][0]
        if len(sizes) > 1:
            odd = [n for n, f in zip(numbers, frames, strict=True) if f.shape != majority]
            notes.append(
                f"frames {_describe(odd)} differ in size from the take's {majority[1]}x{majority[0]}"
            )
            keep = [i for i, f in enumerate(frames) if f.shape == majority]
            numbers, frames = [numbers[i] for i in keep], [frames[i] for i in keep]
    return numbers, (np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)), notes


def blank_frames(frames: np.ndarray, min_std: float = BLANK_FRAME_STD) -> np.ndarray:
    """bool [N]: which frames of uint8 [N,H,W,3] are blank (near-constant pixels)."""
    if len(frames) == 0:
        return np.zeros(0, bool)
    return frames.reshape(len(frames), -1).std(axis=1) < min_std


def fill_timeline(good_numbers: list[int]) -> np.ndarray:
    """For every frame number from the first to the last good one, the index of the good frame
    shown there: itself, or the previous good frame when it is missing or unusable."""
    timeline = np.arange(good_numbers[0], good_numbers[-1] + 1)
    return np.searchsorted(good_numbers, timeline, side="right") - 1


class TakeProcessor:
    """Turns one raw take into shard members; builds its landmark source on first use."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings
        self._source = None

    @property
    def source(self):
        if self._source is None:
            self._source = build_landmark_source(
                self.settings.landmarks,
                structure_mesh=self.settings.structure_mesh,
                **self.settings.landmark_options,
            )
        return self._source

    @property
    def smooth(self):
        settings = self.settings
        return smoother(settings.landmark_smoothing, **settings.landmark_smoothing_options)

    def process(self, take: Take) -> list[TakeResult]:
        """The results of one unit of work (a take here; a video gives several)."""
        return [self(take)]

    def __call__(self, take: Take) -> TakeResult:
        try:
            return self._process(take)
        except LandmarkSourceUnavailable:
            raise  # the backend cannot run here at all: stop instead of skipping every take
        except (
            Exception
        ) as error:  # one bad take (or a detector crashing on it) never stops the run
            return _skipped(take, f"{type(error).__name__}: {error}")

    def _process(self, take: Take) -> TakeResult:
        settings = self.settings
        skip = partial(_skipped, take)
        if len(take.frame_numbers) < 2:
            return skip(f"fewer than 2 frames ({len(take.frame_numbers)})")
        numbers, frames, notes = load_take_frames(take)
        if take.missing_frame_numbers:
            notes.append(f"frames {_describe(list(take.missing_frame_numbers))} missing")
        blank = blank_frames(frames)
        if blank.any():
            notes.append(
                f"frames {_describe([n for n, b in zip(numbers, blank, strict=True) if b])} "
                f"blank (near-constant pixels)"
            )
            numbers, frames = (
                [n for n, b in zip(numbers, blank, strict=True) if not b],
                frames[~blank],
            )
        if len(numbers) < 2:
            return skip("fewer than 2 readable, non-blank frames", notes)

        landmarks = self.source(frames, take.directory, frame_ids=numbers)
        has_face = ~np.isnan(landmarks).any(axis=(1, 2))
        if not has_face.any():
            return skip("no face found in any frame", notes)
        if not has_face.all():
            notes.append(
                f"no face in frames {_describe([n for n, ok in zip(numbers, has_face, strict=True) if not ok])}"
            )
        keep = np.flatnonzero(has_face)
        numbers, frames, landmarks = [numbers[i] for i in keep], frames[keep], landmarks[keep]
        landmarks = self.smooth(landmarks)

        # Frames missing, unreadable, of another size or without a face inside the take are
        # filled with the previous good frame (keeps the timing); at its ends they are dropped.
        index = fill_timeline(numbers)
        repaired = len(index) - len(numbers)
        dropped_ends = (numbers[0] - take.frame_numbers[0]) + (take.frame_numbers[-1] - numbers[-1])
        if dropped_ends:
            notes.append(f"{dropped_ends} unusable frame(s) dropped at the start/end")
        if repaired:
            notes.append(f"{repaired} frame(s) filled from the previous good frame")
        if len(index) < 2:
            return skip("fewer than 2 usable frames", notes)
        if repaired > settings.max_repaired_fraction * len(index):
            return skip(
                f"{repaired} of {len(index)} frames would need repair (limit {settings.max_repaired_fraction:.0%})",
                notes,
            )

        crops, crop_landmarks = crop_take(frames, landmarks, settings)
        sample = TakeSample(
            key=take.key,
            frames=crops[index],
            landmarks=crop_landmarks[index],
            meta={
                "subject": take.subject,
                "expression": take.expression,
                "take": take.name,
                "source_frames": [numbers[i] for i in index],
                "repairs": notes,
                "image_size": settings.image_size,
            },
        )
        members = encode_take(sample, settings.image_format, settings.jpeg_quality)
        return TakeResult(take.label, take.key, members, frames=len(index), repairs=notes)


def _skipped(take: Take, reason: str, notes: list[str] = ()) -> TakeResult:
    return TakeResult(take.label, take.key, None, skipped=reason, repairs=list(notes))


def crop_take(
    frames: np.ndarray, landmarks: np.ndarray, settings: PrepareSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Square face crops resized to image_size, and the landmarks in crop pixel coordinates."""
    boxes = crop_boxes(
        landmarks, follow=settings.crop_follow, smoothing_window=settings.crop_smoothing_window
    )
    crops = crop_frames(frames, boxes, settings.image_size, border=settings.crop_border)
    return crops, landmarks_to_crop(landmarks, boxes, settings.image_size)
