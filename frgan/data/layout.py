"""Scan a raw folder in MUG layout: <root>/<subject>/<expression>/<take>/img_NNNN.jpg.

Nothing here reads an image: the scan only finds takes, their frame files and numbering
gaps, and lists everything it ignored with the reason, so that preparation can report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FRAME_PATTERN = re.compile(r"^img_(\d+)\.jpe?g$", re.IGNORECASE)
# Files a take folder may hold besides its frames (the synthetic set's ground truth).
KNOWN_TAKE_FILES = {"ground_truth.npz"}
# Files the raw root may hold besides subject folders.
KNOWN_ROOT_FILES = {"dataset_card.json"}
EXPECTED_LAYOUT = (
    "<raw_dir>/<subject>/<expression>/<take>/img_NNNN.jpg (e.g. s001/anger/take000/img_0000.jpg)"
)


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
        """Unique sample key, safe inside a tar member name (no dots, no slashes)."""
        return f"{self.subject}__{self.expression}__{self.name}".replace(".", "_")

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


@dataclass
class RawLayout:
    root: Path
    takes: list[Take] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted({take.subject for take in self.takes})


def _frames_in(directory: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    frames, others = [], []
    for path in sorted(directory.iterdir()):
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

    Raises FileNotFoundError when the folder is missing and RawLayoutError when it holds
    no take at all in the expected layout (the message says what was expected and what
    was found instead).
    """
    root = Path(raw_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Raw data folder {root} does not exist; set data.raw_dir to a folder in MUG layout "
            f"{EXPECTED_LAYOUT}."
        )
    wanted = set(expressions) if expressions else None
    layout = RawLayout(root=root)

    def ignore(path: Path, reason: str) -> None:
        layout.ignored.append(Ignored(_relative(path, root), reason))

    for subject_dir in sorted(root.iterdir()):
        if not subject_dir.is_dir():
            if subject_dir.name not in KNOWN_ROOT_FILES:
                ignore(subject_dir, "stray file at the top level (expected subject folders)")
            continue
        if subject_dir.name.startswith("."):
            ignore(subject_dir, "hidden folder")
            continue
        takes_before = len(layout.takes)
        for expression_dir in sorted(subject_dir.iterdir()):
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
            for take_dir in sorted(expression_dir.iterdir()):
                if not take_dir.is_dir():
                    ignore(take_dir, "stray file in an expression folder (expected take folders)")
                    continue
                frames, others = _frames_in(take_dir)
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
        if len(layout.takes) == takes_before:
            ignore(subject_dir, "folder without <expression>/<take>/img_NNNN.jpg inside")

    if not layout.takes:
        found = sorted(p.name for p in root.iterdir())[:8]
        hint = ""
        if len(found) == 1 and (root / found[0]).is_dir():
            hint = f" If the subjects are inside '{found[0]}', set data.raw_dir={root / found[0]}."
        raise RawLayoutError(
            f"No takes found under {root}: expected {EXPECTED_LAYOUT}, found top-level entries "
            f"{found or 'none'}.{hint}"
        )
    return layout
