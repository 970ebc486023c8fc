"""A contact sheet per subject: a row per prepared take, frames spread over it, the take named.

Read back from the written shards (so takes finished by an earlier run are drawn too); only
the frames shown are decoded.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from frgan.data.layout import key_part
from frgan.utils.media import caption, write_image

SHEETS_DIR = "contact_sheets"
SHEET_COLUMNS = 6
SHEET_ROWS = 12  # takes drawn per subject at most
FRAME_NAME = re.compile(r"^(.+)\.(\d+)\.(jpg|png)$")


def takes_of_shard(path: Path) -> list[tuple[dict, list[np.ndarray]]]:
    """(metadata, up to SHEET_COLUMNS frames spread over the take) of each take of a shard."""
    metas: dict[str, dict] = {}
    members: dict[str, dict[int, tarfile.TarInfo]] = defaultdict(dict)
    with tarfile.open(path) as archive:
        for member in archive:
            match = FRAME_NAME.match(member.name)
            if match:
                members[match.group(1)][int(match.group(2))] = member
            elif member.name.endswith(".json"):
                metas[member.name[: -len(".json")]] = json.loads(archive.extractfile(member).read())
        return [
            (meta, [_decode(archive, members[key][i]) for i in _spread(sorted(members[key]))])
            for key, meta in metas.items()
        ]


def _spread(indices: list[int]) -> list[int]:
    picks = np.linspace(0, len(indices) - 1, min(SHEET_COLUMNS, len(indices))).round().astype(int)
    return [indices[i] for i in picks]


def _decode(archive: tarfile.TarFile, member: tarfile.TarInfo) -> np.ndarray:
    data = np.frombuffer(archive.extractfile(member).read(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], size: int) -> np.ndarray:
    """uint8 image: per row a caption strip then its frames (uint8 [size, size, 3]) side by side."""
    width = SHEET_COLUMNS * size
    blocks = []
    for name, frames in rows:
        strip = np.full((size, width, 3), 255, np.uint8)
        for column, frame in enumerate(frames):
            strip[:, column * size : (column + 1) * size] = frame
        blocks += [caption(name, width), strip]
    return np.concatenate(blocks, axis=0)


def write_contact_sheets(shard_dir: Path, manifest: dict) -> list[Path]:
    """<shard_dir>/contact_sheets/<subject>.png for every subject with prepared takes."""
    rows: dict[str, list] = defaultdict(list)
    for record in manifest["shards"]:
        for meta, frames in takes_of_shard(shard_dir / record["file"]):
            if len(rows[meta["subject"]]) < SHEET_ROWS:
                rows[meta["subject"]].append((f"{meta['expression']}  {meta['take']}", frames))
    folder = shard_dir / SHEETS_DIR
    folder.mkdir(exist_ok=True)
    size = manifest["image_size"]
    return [
        write_image(folder / f"{key_part(subject)}.png", contact_sheet(subject_rows, size))
        for subject, subject_rows in sorted(rows.items())
    ]
