"""Previews of a written set: a contact sheet (subjects x [neutral + expressions at apex])
and one animated GIF per expression (a grid of subjects playing their first take)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from frgan.synthetic.files import (
    CARD_NAME,
    FRAME_GLOB,
    GROUND_TRUTH_NAME,
    frame_name,
    take_name,
)
from frgan.utils.media import caption, write_gif, write_image

MAX_SHEET_SUBJECTS = 24
GIF_SUBJECTS = 8
GIF_FPS = 12.5  # 80 ms per frame


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"Cannot read preview source image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def contact_sheet(root: Path, subjects: list, expressions: list) -> np.ndarray:
    """Rows: subjects; columns: neutral (first frame) then each expression at its apex frame."""
    rows = []
    for subject in subjects:
        cells = []
        for index, expression in enumerate(expressions):
            take = root / subject / expression / take_name(0)
            with np.load(take / GROUND_TRUTH_NAME) as truth:
                apex = int(truth["apex_frame"])
            if index == 0:
                cells.append(_read_rgb(take / frame_name(0)))
            cells.append(_read_rgb(take / frame_name(apex)))
        rows.append(np.concatenate(cells, 1))
    size = rows[0].shape[0]
    header = np.concatenate([caption(name, size) for name in ["neutral", *expressions]], 1)
    return np.concatenate([header, *rows], 0)


def expression_gif_frames(root: Path, subjects: list, expression: str) -> list:
    """Frames of a 2-row grid of subjects playing take000; shorter takes hold their last frame."""
    clips = []
    for subject in subjects:
        take = root / subject / expression / take_name(0)
        clips.append([_read_rgb(p) for p in sorted(take.glob(FRAME_GLOB))])
    length = max(len(c) for c in clips)
    columns = -(-len(clips) // 2) if len(clips) > 1 else 1
    blank = np.zeros_like(clips[0][0])
    frames = []
    for t in range(length):
        tiles = [c[min(t, len(c) - 1)] for c in clips] + [blank] * (columns * 2 - len(clips))
        rows = [
            np.concatenate(tiles[r * columns : (r + 1) * columns], 1)
            for r in range(len(tiles) // columns)
        ]
        frames.append(np.concatenate(rows, 0))
    return frames


def write_preview(root) -> list[Path]:
    """Write preview/contact_sheet.png and preview/<expression>.gif; returns their paths."""
    root = Path(root)
    card = json.loads((root / CARD_NAME).read_text())
    subjects, expressions = card["subjects"], card["expressions"]
    folder = root / "preview"
    folder.mkdir(exist_ok=True)
    sheet = contact_sheet(root, subjects[:MAX_SHEET_SUBJECTS], expressions)
    written = [write_image(folder / "contact_sheet.png", sheet)]
    for expression in expressions:
        frames = np.stack(expression_gif_frames(root, subjects[:GIF_SUBJECTS], expression))
        written.append(write_gif(folder / f"{expression}.gif", frames, fps=GIF_FPS))
    return written
