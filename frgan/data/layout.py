"""Scan a raw folder in MUG layout: <root>/<subject>/<expression>/<take>/img_NNNN.jpg.

Nothing here reads an image: the scan only finds takes, their frame files and numbering
gaps, and lists everything it ignored with the reason, so that preparation can report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

FRAME_PATTERN = re.compile(r"^img_(\d+)\.jpe?g$", re.IGNORECASE)
# Files a take folder may hold besides its frames (the synthetic set's ground truth).
KNOWN_TAKE_FILES = {"ground_truth.npz"}
# Files the raw root may hold besides subject folders.
KNOWN_ROOT_FILES = {"dataset_card.json"}
EXPECTED_LAYOUT = (
    "<raw_dir>/<subject>/<expression>/<take>/img_NNNN.jpg (e.g. s001/anger/take000/img_0000.jpg)"
)


KEY_SEPARATOR = "__"


def key_part(name: str) -> str:
    """A folder name as one part of a sample key, reversibly: percent-encoded except letters,
    digits, '-' and '_' (so no '.'), and '_' encoded too where it could blur the '__' between
    parts (a name holding '__' or starting or ending with '_')."""
    part = quote(name, safe="-_").replace(".", "%2E").replace("~", "%7E")
    if KEY_SEPARATOR in part or part.startswith("_") or part.endswith("_"):
        part = part.replace("_", "%5F")
    return part


class RawLayoutError(ValueError):
    """The raw folder is not in MUG layout at all."""


@dataclass(frozen=True)
class Take:
    subject: str
    expression: str
    name: str
    directory: Path
    frame_paths: tuple[Path, ...]
    frame_numbers: tuple[int, ...]

    @property
    def label(self) -> str:
        """subject/expression/take, as the manifest names takes."""
        return f"{self.subject}/{self.expression}/{self.name}"

    @property
    def key(self) -> str:
        """Sample key, safe inside a tar member name (no dots, no slashes) and unique: distinct
        folder names always give distinct keys (`take.1` -> `take%2E1`, `take_1` unchanged)."""
        return KEY_SEPARATOR.join(
            key_part(part) for part in (self.subject, self.expression, self.name)
        )

    @property
    def missing_frame_numbers(self) -> tuple[int, ...]:
        """Frame numbers absent between the first and the last frame of the take."""
        present = set(self.frame_numbers)
        first, last = self.frame_numbers[0], self.frame_numbers[-1]
        return tuple(n for n in range(first, last + 1) if n not in present)


@dataclass(frozen=True)
class Ignored:
    path: str
    reason: str


@dataclass(frozen=True)
class UnreadableTake:
    label: str  # subject/expression/take, as the manifest names takes
    reason: str


@dataclass
class RawLayout:
    root: Path
    takes: list[Take] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    unreadable_takes: list[UnreadableTake] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted({take.subject for take in self.takes})


def list_folder(directory: Path) -> list[Path]:
    """The entries of a folder, sorted (OSError when it cannot be read)."""
    return sorted(directory.iterdir())


def _cannot_read(error: OSError) -> str:
    return f"folder cannot be read ({type(error).__name__}: {error.strerror or error})"


def _frames_in(directory: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    frames, others = [], []
    for path in list_folder(directory):
        match = FRAME_PATTERN.match(path.name)
        if match and path.is_file():
            frames.append((int(match.group(1)), path))
        else:
            others.append(path)
    return sorted(frames), others


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def scan_raw_layout(raw_dir: str | Path, expressions: list[str] | None = None) -> RawLayout:
    """Find every take under `raw_dir`; `expressions` limits which expression folders count.

    Raises FileNotFoundError when the folder is missing, NotADirectoryError when it is a
    file, and RawLayoutError when it cannot be read or holds no take at all in the expected
    layout (the message says what was expected and what was found instead). A subject or
    expression folder that cannot be read is listed as ignored, a take folder that cannot be
    read as an unreadable take, each with the reason.
    """
    root = Path(raw_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"data.raw_dir {root} is a file, not a folder; set data.raw_dir to the folder in "
            f"MUG layout {EXPECTED_LAYOUT}."
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"Raw data folder {root} does not exist; set data.raw_dir to a folder in MUG layout "
            f"{EXPECTED_LAYOUT}."
        )
    try:
        top_level = list_folder(root)
    except OSError as error:
        raise RawLayoutError(
            f"Raw data folder {root} cannot be read ({type(error).__name__}: "
            f"{error.strerror or error}); give this user read access (e.g. chmod -R u+rX {root}) "
            f"or set data.raw_dir to a readable copy."
        ) from error
    wanted = set(expressions) if expressions else None
    layout = RawLayout(root=root)

    def ignore(path: Path, reason: str) -> None:
        layout.ignored.append(Ignored(_relative(path, root), reason))

    for subject_dir in top_level:
        if not subject_dir.is_dir():
            if subject_dir.name not in KNOWN_ROOT_FILES:
                ignore(subject_dir, "stray file at the top level (expected subject folders)")
            continue
        if subject_dir.name.startswith("."):
            ignore(subject_dir, "hidden folder")
            continue
        takes_before = len(layout.takes) + len(layout.unreadable_takes)
        try:
            expression_dirs = list_folder(subject_dir)
        except OSError as error:
            ignore(subject_dir, _cannot_read(error))
            continue
        for expression_dir in expression_dirs:
            if not expression_dir.is_dir():
                ignore(
                    expression_dir, "stray file in a subject folder (expected expression folders)"
                )
                continue
            if wanted is not None and expression_dir.name not in wanted:
                ignore(
                    expression_dir,
                    f"expression '{expression_dir.name}' not in the selected expressions",
                )
                continue
            try:
                take_dirs = list_folder(expression_dir)
            except OSError as error:
                ignore(expression_dir, _cannot_read(error))
                continue
            for take_dir in take_dirs:
                if not take_dir.is_dir():
                    ignore(take_dir, "stray file in an expression folder (expected take folders)")
                    continue
                try:
                    frames, others = _frames_in(take_dir)
                except OSError as error:
                    layout.unreadable_takes.append(
                        UnreadableTake(_relative(take_dir, root), _cannot_read(error))
                    )
                    continue
                for other in others:
                    if other.name not in KNOWN_TAKE_FILES:
                        kind = "folder" if other.is_dir() else "file"
                        ignore(other, f"stray {kind} in a take folder (expected img_NNNN.jpg)")
                if not frames:
                    ignore(take_dir, "take folder without img_NNNN.jpg frames")
                    continue
                layout.takes.append(
                    Take(
                        subject=subject_dir.name,
                        expression=expression_dir.name,
                        name=take_dir.name,
                        directory=take_dir,
                        frame_paths=tuple(path for _, path in frames),
                        frame_numbers=tuple(number for number, _ in frames),
                    )
                )
        if len(layout.takes) + len(layout.unreadable_takes) == takes_before:
            ignore(subject_dir, "folder without <expression>/<take>/img_NNNN.jpg inside")

    if not layout.takes and layout.unreadable_takes:
        first = layout.unreadable_takes[0]
        raise RawLayoutError(
            f"No take under {root} can be read ({len(layout.unreadable_takes)} take folders, "
            f"e.g. {first.label}: {first.reason}); give this user read access "
            f"(e.g. chmod -R u+rX {root})."
        )
    if not layout.takes:
        found = [p.name for p in top_level][:8]
        hint = ""
        if len(found) == 1 and (root / found[0]).is_dir():
            hint = f" If the subjects are inside '{found[0]}', set data.raw_dir={root / found[0]}."
        raise RawLayoutError(
            f"No takes found under {root}: expected {EXPECTED_LAYOUT}, found top-level entries "
            f"{found or 'none'}.{hint}"
        )
    return layout
