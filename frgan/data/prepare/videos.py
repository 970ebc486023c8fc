"""One video file or frame folder (data=videos) -> its takes' shard members and its rejections.

The frames are decoded one by one, resampled to the configured frame rate and cut into
stretches at shot cuts and every `take_frames` frames (so a long video never sits in memory).
The faces of each stretch are found by the landmark source in one call (MediaPipe tracks them
through it); frames with no face, several faces or a face too small end a take there. Every
frame decoded ends in a take or in a rejection with its reason and frame count.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

import cv2
import numpy as np

from frgan.data.errors import LandmarkSourceUnavailable
from frgan.data.landmarks import detect_faces
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.prepare.takes import TakeProcessor, TakeResult, blank_frames, crop_take, load_frame
from frgan.data.shards import TakeSample, encode_take
from frgan.data.topology import mesh_of
from frgan.data.video_layout import VideoSource

NO_FACE = "no face"
SEVERAL_FACES = "several faces"
FACE_TOO_SMALL = "face too small"
TOO_SHORT = "too short"
UNREADABLE = "unreadable file"
HISTOGRAM_BINS = (16, 16)  # hue x saturation


class SourceUnreadable(Exception):
    """The file (or a frame of the folder) cannot be decoded."""


# ---------------------------------------------------------------- pure steps


def resample(
    frames: Iterator[np.ndarray], fps_in: float, fps_out: float
) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame number, frame) at fps_out from a stream at fps_in, without knowing its
    length: each output time shows the source frame on screen then (dropped or repeated)."""
    output = 0
    for number, frame in enumerate(frames):
        while np.floor(output * fps_in / fps_out + 1e-9) == number:
            yield number, frame
            output += 1


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised hue-saturation histogram of an RGB frame (for shot-cut detection)."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, list(HISTOGRAM_BINS), [0, 180, 0, 256])
    return cv2.normalize(histogram, histogram).flatten()


def is_cut(previous: np.ndarray, current: np.ndarray, threshold: float) -> bool:
    """A shot cut between two histograms: their Bhattacharyya distance (0 same, 1 disjoint)."""
    return cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA) > threshold


def stretches(
    frames: Iterator[tuple[int, np.ndarray]], take_frames: int, cut_threshold: float
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Consecutive frames cut at shot cuts, at a change of frame size and every take_frames."""
    stretch, previous = [], None
    for number, frame in frames:
        histogram = colour_histogram(frame)
        if stretch and (
            len(stretch) == take_frames
            or frame.shape != stretch[-1][1].shape
            or is_cut(previous, histogram, cut_threshold)
        ):
            yield stretch
            stretch = []
        stretch.append((number, frame))
        previous = histogram
    if stretch:
        yield stretch


def face_sizes(landmarks: np.ndarray) -> np.ndarray:
    """Side of each frame's landmark box [T] (the 68 points' largest extent) of [T, P, 3]."""
    points = mesh_of(landmarks).face68(landmarks)[..., :2]
    return (points.max(axis=-2) - points.min(axis=-2)).max(axis=-1)


def frame_problems(
    frames: np.ndarray, landmarks: np.ndarray, counts: np.ndarray, min_face_size: float
) -> list[str]:
    """Per frame: "" when it can go into a take, else why not (NO_FACE, SEVERAL_FACES, ...)."""
    found = ~np.isnan(landmarks).any(axis=(1, 2)) & (counts > 0) & ~blank_frames(frames)
    sizes = face_sizes(np.where(found[:, None, None], landmarks, 0.0))
    problems = []
    for has_face, count, size in zip(found, counts, sizes, strict=True):
        if not has_face:
            problems.append(NO_FACE)
        elif count > 1:
            problems.append(SEVERAL_FACES)
        elif size < min_face_size:
            problems.append(FACE_TOO_SMALL)
        else:
            problems.append("")
    return problems


def runs(problems: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, problem) of each run of equal entries."""
    out, start = [], 0
    for problem, group in groupby(problems):
        length = len(list(group))
        out.append((start, start + length, problem))
        start += length
    return out


# ---------------------------------------------------------------- decoding


def read_source(source: VideoSource, frame_folder_fps: float) -> tuple[float, Iterator[np.ndarray]]:
    """(frame rate, RGB uint8 frames) of a video file or a frame folder; SourceUnreadable
    when it cannot be opened, or later from the iterator when a frame cannot be decoded."""
    if source.frame_paths:
        return frame_folder_fps, _folder_frames(source)
    import imageio.v3 as iio

    try:
        fps = float(iio.immeta(source.path, plugin="pyav").get("fps") or 0.0)
    except Exception as error:  # PyAV raises its own errors for anything it cannot open
        raise SourceUnreadable(_why(error)) from error
    if not fps > 0:
        raise SourceUnreadable("the file states no frame rate")
    return fps, _video_frames(source)


class UntilUnreadable:
    """Frames until the first one that cannot be decoded; `error` then says why, so the
    frames before it still become takes."""

    def __init__(self, frames: Iterator[np.ndarray]):
        self.frames, self.error = frames, None

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            yield from self.frames
        except SourceUnreadable as error:
            self.error = error


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _video_frames(source: VideoSource) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    frames = iio.imiter(source.path, plugin="pyav", format="rgb24")
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as error:
            raise SourceUnreadable(_why(error)) from error
        yield np.ascontiguousarray(frame)


def _folder_frames(source: VideoSource) -> Iterator[np.ndarray]:
    for path in source.frame_paths:
        try:
            yield load_frame(path)
        except (OSError, ValueError) as error:
            raise SourceUnreadable(f"frame {path.name}: {_why(error)}") from error


# ---------------------------------------------------------------- one source


class VideoProcessor(TakeProcessor):
    """Turns one video source into TakeResults: its takes and its rejected stretches."""

    def __init__(self, settings: PrepareSettings):
        super().__init__(settings)
        self.video = settings.video_settings()

    def process(self, source: VideoSource) -> list[TakeResult]:
        results: list[TakeResult] = []
        decoded = 0
        try:
            fps_in, frames = read_source(source, self.video.frame_folder_fps)
        except SourceUnreadable as error:
            return [self._rejection(source, 0, 0, f"{UNREADABLE} ({error})")]
        fps_out = self.video.fps or fps_in
        readable = UntilUnreadable(frames)
        cut = stretches(
            resample(iter(readable), fps_in, fps_out),
            self.video.take_frames,
            self.video.cut_threshold,
        )
        for stretch in cut:
            try:
                results += self._stretch(source, decoded, stretch, fps_out)
            except LandmarkSourceUnavailable:
                raise  # the backend cannot run here at all: stop instead of rejecting every video
            except Exception as error:  # a detector failing on one stretch never stops the run
                results.append(self._rejection(source, decoded, len(stretch), _why(error)))
            decoded += len(stretch)
        if readable.error is not None:
            after = f"; after output frame {decoded - 1}" if decoded else ""
            results.append(
                self._rejection(source, decoded, 0, f"{UNREADABLE} ({readable.error}{after})")
            )
        elif decoded == 0:
            results.append(self._rejection(source, 0, 0, f"{UNREADABLE} (no frames decoded)"))
        return results

    def _rejection(self, source: VideoSource, start: int, count: int, reason: str) -> TakeResult:
        name = f"{source.label}@{start}-{start + count - 1}" if count else source.label
        return TakeResult(name, source.take_key(start), None, skipped=reason, rejected_frames=count)

    def _stretch(
        self, source: VideoSource, offset: int, stretch: list, fps: float
    ) -> list[TakeResult]:
        numbers = [number for number, _ in stretch]
        frames = np.stack([frame for _, frame in stretch])
        landmarks, counts = detect_faces(
            self.source, frames, source.ground_truth, frame_ids=numbers
        )
        problems = frame_problems(frames, landmarks, counts, self.video.min_face_size)
        results = []
        for start, end, problem in runs(problems):
            count = end - start
            if problem == FACE_TOO_SMALL:
                largest = face_sizes(landmarks[start:end]).max()
                problem += f" (largest {largest:.0f} px < data.prepare.videos.min_face_size={self.video.min_face_size:g})"
            elif not problem and count < self.video.min_take_frames:
                problem = f"{TOO_SHORT} ({count} frames < data.prepare.videos.min_take_frames={self.video.min_take_frames})"
            if problem:
                results.append(self._rejection(source, offset + start, count, problem))
            else:
                results.append(
                    self._take(
                        source,
                        offset + start,
                        numbers[start:end],
                        frames[start:end],
                        landmarks[start:end],
                        fps,
                    )
                )
        return results

    def _take(self, source, start, numbers, frames, landmarks, fps) -> TakeResult:
        settings = self.settings
        crops, crop_landmarks = crop_take(frames, self.smooth(landmarks), settings)
        name = f"{source.label}@{start}-{start + len(frames) - 1}"
        sample = TakeSample(
            key=source.take_key(start),
            frames=crops,
            landmarks=crop_landmarks,
            meta={
                "subject": source.subject,
                "expression": source.expression,
                "take": name,
                "source": source.relative,
                "fps": fps,
                "source_frames": [int(n) for n in numbers],
                "repairs": [],
                "image_size": settings.image_size,
            },
        )
        members = encode_take(sample, settings.image_format, settings.jpeg_quality)
        return TakeResult(name, sample.key, members, frames=len(frames))
