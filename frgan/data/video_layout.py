"""Find the sources of data=videos: video files and folders of frames at any depth under raw_dir.

A source's subject and label come from parts of its path relative to raw_dir (levels counted
from 0 at the top, negative from the file name, which counts without its suffix), or from a
CSV/JSON listing of `path, subject[, label, split]`. Nothing here decodes a frame; everything
found and not used is listed as ignored with the reason, so that preparation can report it.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from frgan.data.layout import KEY_SEPARATOR, Ignored, key_part, list_folder
from frgan.data.splits import SPLIT_NAMES
from frgan.errors import ConfigError

# what FFmpeg (through PyAV) is asked to decode; anything else that is not a frame is ignored
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
GROUND_TRUTH_SUFFIX = ".ground_truth.npz"  # clip.mp4 -> clip.ground_truth.npz (synthetic videos)
KNOWN_FILES = {"ground_truth.npz", "dataset_card.json"}
NO_LABEL = "unlabelled"
LISTING_COLUMNS = ("path", "subject", "label", "split")


@dataclass(frozen=True)
class VideoSource:
    """One video file or one folder of frames, with the subject and label it belongs to."""

    subject: str
    expression: str  # the label (the shards' `expression` field); NO_LABEL when there is none
    relative: str  # path under raw_dir, '/'-separated
    path: Path
    frame_paths: tuple[Path, ...] = ()  # a folder of frames: its frames in order; a file: ()

    @property
    def label(self) -> str:
        """How the manifest names the source."""
        return self.relative

    @property
    def key(self) -> str:
        return KEY_SEPARATOR.join(
            key_part(p) for p in (self.subject, self.expression, self.relative)
        )

    def take_key(self, start: int) -> str:
        """Sample key of the take starting at output frame `start` of this source."""
        return f"{self.key}{KEY_SEPARATOR}{start:06d}"

    @property
    def ground_truth(self) -> Path:
        """Where ground-truth landmarks of this source are stored (synthetic videos)."""
        if self.frame_paths:
            return self.path
        return self.path.with_name(self.path.stem + GROUND_TRUTH_SUFFIX)


@dataclass
class VideoLayout:
    root: Path
    takes: list[VideoSource] = field(default_factory=list)  # named `takes` as in RawLayout
    ignored: list[Ignored] = field(default_factory=list)
    unreadable_takes: list = field(default_factory=list)  # listed paths that do not exist
    listed_split: dict[str, str] | None = None  # subject -> split, from the listing

    @property
    def subjects(self) -> list[str]:
        return sorted({source.subject for source in self.takes})


def _natural_key(path: Path) -> tuple:
    """img_2 before img_10: digit runs compare as numbers."""
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", path.name)
    )


def frames_of(folder: Path) -> tuple[Path, ...]:
    """The frame images of a folder in natural order (OSError when it cannot be read)."""
    frames = [p for p in list_folder(folder) if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()]
    return tuple(sorted(frames, key=_natural_key))


def path_levels(relative: str, is_file: bool) -> tuple[str, ...]:
    """The parts of a source's path that subject_level and label_level index (a file's
    name without its suffix)."""
    parts = PurePosixPath(relative).parts
    if is_file and parts:
        parts = (*parts[:-1], PurePosixPath(parts[-1]).stem)
    return parts


def _relative(path: Path, root: Path) -> str:
    return PurePosixPath(*path.relative_to(root).parts).as_posix() if path != root else "."


def _walk(root: Path, listing: Path | None, ignored: list[Ignored]) -> list[Path]:
    """Video files and frame folders under root, in sorted order; the rest goes to `ignored`."""
    found = []

    def ignore(path: Path, reason: str) -> None:
        ignored.append(Ignored(_relative(path, root), reason))

    def visit(folder: Path) -> None:
        try:
            entries = list_folder(folder)
            if frames_of(folder):
                found.append(folder)
        except OSError as error:
            ignore(
                folder, f"folder cannot be read ({type(error).__name__}: {error.strerror or error})"
            )
            return
        for entry in entries:
            suffix = entry.suffix.lower()
            if entry.name.startswith("."):
                ignore(entry, "hidden")
            elif entry.is_dir():
                visit(entry)
            elif suffix in VIDEO_SUFFIXES:
                found.append(entry)
            elif suffix in FRAME_SUFFIXES or entry.name in KNOWN_FILES or entry == listing:
                continue
            elif not entry.name.endswith(GROUND_TRUTH_SUFFIX):
                ignore(entry, f"not a video (known suffixes: {' '.join(VIDEO_SUFFIXES)})")

    visit(root)
    return found


def _source(path: Path, root: Path, subject: str, label: str | None) -> VideoSource:
    frames = frames_of(path) if path.is_dir() else ()
    return VideoSource(subject, label or NO_LABEL, _relative(path, root), path, frames)


def scan_video_layout(
    raw_dir: str | Path,
    *,
    subject_level: int = 0,
    label_level: int | None = None,
    listing: str | Path | None = None,
) -> VideoLayout:
    """Every video file and frame folder under raw_dir with its subject and label: from the
    parts of its path (subject_level, label_level) or from a listing (read from raw_dir when
    relative); see data.prepare.videos.

    FileNotFoundError / NotADirectoryError for a missing raw_dir, ConfigError for a bad listing
    or when no source is found (the message says what was expected)."""
    root = Path(raw_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"data.raw_dir {root} is a file; set data.raw_dir to the folder of your videos."
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"Raw video folder {root} does not exist; set data.raw_dir to the folder of your videos."
        )
    layout = VideoLayout(root=root)
    if listing is not None:
        listing = Path(listing).expanduser()
        listing = listing if listing.is_absolute() else root / listing
    found = _walk(root, listing, layout.ignored)
    if listing is not None:
        _apply_listing(layout, listing, found)
    else:
        for path in found:
            relative = _relative(path, root)
            levels = path_levels(relative, path.is_file())
            subject = _level(levels, subject_level)
            label = None if label_level is None else _level(levels, label_level)
            missing = [
                f"no level {level} for the {what} (data.prepare.videos.{what}_level)"
                for what, level, value in (
                    ("subject", subject_level, subject),
                    ("label", label_level, label),
                )
                if level is not None and value is None
            ]
            if missing:
                layout.ignored.append(
                    Ignored(relative, f"path {list(levels)} has {'; '.join(missing)}")
                )
                continue
            layout.takes.append(_source(path, root, subject, label))
    if not layout.takes and not layout.unreadable_takes:
        seen = [i.path for i in layout.ignored][:5]
        raise ConfigError(
            f"No video files or frame folders found under {root} (videos: "
            f"{' '.join(VIDEO_SUFFIXES)}; frames: {' '.join(FRAME_SUFFIXES)}); found {seen or 'nothing'}."
        )
    return layout


def _level(parts: tuple[str, ...], level: int) -> str | None:
    return parts[level] if -len(parts) <= level < len(parts) else None


def read_listing(listing: Path) -> list[dict[str, str]]:
    """Rows of a CSV (with a header) or JSON (a list of objects) listing, checked: each has a
    path and a subject; label and split are optional. ConfigError naming the problem."""
    if not listing.is_file():
        raise ConfigError(
            f"data.prepare.videos.listing {listing} does not exist; give a CSV or JSON file "
            "with columns path, subject[, label, split] (a relative path is read from data.raw_dir)."
        )
    try:
        text = listing.read_text(encoding="utf-8")
        if listing.suffix.lower() == ".json":
            rows = json.loads(text)
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("expected a list of objects")
        else:
            rows = list(csv.DictReader(text.splitlines()))
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as error:
        raise ConfigError(
            f"data.prepare.videos.listing {listing} cannot be read ({error})"
        ) from error
    checked = []
    for number, row in enumerate(rows, start=1):
        values = {k: str(row.get(k) or "").strip() for k in LISTING_COLUMNS}
        if not values["path"] or not values["subject"]:
            raise ConfigError(
                f"{listing}: row {number} lacks a path or a subject; every row needs "
                f"path and subject (label and split are optional), got {dict(row)}"
            )
        if values["split"] and values["split"] not in SPLIT_NAMES:
            raise ConfigError(
                f"{listing}: row {number} has split {values['split']!r}; use one of {SPLIT_NAMES} or leave it empty"
            )
        checked.append(values)
    if not checked:
        raise ConfigError(f"data.prepare.videos.listing {listing} lists no videos")
    return checked


def _apply_listing(layout: VideoLayout, listing: Path, found: list[Path]) -> None:
    root = layout.root
    rows = read_listing(listing)
    listed = set()
    splits: dict[str, str] = {}
    for row in rows:
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else root / path
        if row["split"]:
            if splits.setdefault(row["subject"], row["split"]) != row["split"]:
                raise ConfigError(
                    f"{listing}: subject {row['subject']!r} is listed in the {splits[row['subject']]} "
                    f"and the {row['split']} split; a subject belongs to one split"
                )
        if not path.exists():
            layout.unreadable_takes.append(
                UnreadableSource(row["path"], "unreadable file (listed but missing)")
            )
            continue
        if path.resolve() in listed:
            raise ConfigError(f"{listing}: {row['path']} is listed twice")
        listed.add(path.resolve())
        try:
            layout.takes.append(_source(path, root, row["subject"], row["label"] or None))
        except (OSError, ValueError) as error:  # outside raw_dir, or a folder that cannot be read
            raise ConfigError(
                f"{listing}: {row['path']} cannot be used ({error}); list paths inside data.raw_dir"
            ) from error
    if splits:
        missing = sorted({row["subject"] for row in rows} - set(splits))
        if missing:
            raise ConfigError(
                f"{listing}: subjects {missing[:5]} have no split while others do; give every "
                "row a split, or none (then data.prepare.split_fractions decide)"
            )
        layout.listed_split = splits
    for path in found:
        if path.resolve() not in listed:
            layout.ignored.append(
                Ignored(_relative(path, root), f"not in the listing {listing.name}")
            )


@dataclass(frozen=True)
class UnreadableSource:
    label: str
    reason: str
