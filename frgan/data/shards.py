"""WebDataset shards of prepared takes and the manifest that describes them.

One tar sample per take, all members sharing the take's key:
  <key>.NNNN.jpg (or .png)  the cropped frames, in order
  <key>.landmarks.npy       float32 [T,68,3] in crop pixel coordinates
  <key>.json                metadata (subject, expression, source frame numbers, repairs)
The manifest (manifest.json beside the shards) holds the schema version, the preparation
config, per-shard sha256 and counts, the subject split and every skipped take with its reason.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from frgan.data.errors import CorruptShard, DataError
from frgan.utils.files import atomic_path

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FRAME_MEMBER = re.compile(r"^(\d+)\.(jpg|png)$")


@dataclass
class TakeSample:
    """A prepared take: decoded frames, landmarks in crop coordinates, metadata."""

    key: str
    frames: np.ndarray  # uint8 [T,H,W,3] RGB
    landmarks: np.ndarray  # float32 [T,68,3]
    meta: dict


def encode_take(
    sample: TakeSample, image_format: str = "jpg", jpeg_quality: int = 95
) -> dict[str, bytes]:
    """Tar members (extension -> bytes) of one take."""
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got '{image_format}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == "jpg" else []
    members = {}
    for index, frame in enumerate(sample.frames):
        ok, encoded = cv2.imencode(
            f".{image_format}", np.ascontiguousarray(frame[..., ::-1]), params
        )
        if not ok:
            raise DataError(f"could not encode frame {index} of take {sample.key}")
        members[f"{index:04d}.{image_format}"] = encoded.tobytes()
    buffer = io.BytesIO()
    np.save(buffer, sample.landmarks.astype(np.float32))
    members["landmarks.npy"] = buffer.getvalue()
    members["json"] = json.dumps(sample.meta, sort_keys=True).encode()
    return members


def decode_take(members: dict) -> TakeSample:
    """Inverse of `encode_take`; accepts webdataset's sample dicts (`__key__` + members)."""
    key, where = members.get("__key__"), members.get("__url__", "a shard")
    names = sorted(
        (k for k in members if FRAME_MEMBER.match(k)), key=lambda k: int(k.split(".")[0])
    )
    try:
        frames = [
            cv2.imdecode(np.frombuffer(members[name], np.uint8), cv2.IMREAD_COLOR) for name in names
        ]
        if not frames or any(frame is None for frame in frames):
            raise ValueError("missing or undecodable frames")
        landmarks = np.load(io.BytesIO(members["landmarks.npy"]))
        meta = json.loads(members["json"])
    except (KeyError, ValueError, OSError) as error:
        raise CorruptShard(
            f"Take {key} in shard {where} is damaged ({error}); re-run the preparation."
        ) from error
    return TakeSample(
        key=key, frames=np.stack(frames)[..., ::-1].copy(), landmarks=landmarks, meta=meta
    )


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_shard(path: str | Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> dict:
    """Write (key, members) samples to a tar atomically; returns {file, sha256, bytes, takes}.

    The tar is written beside the target under a temporary name and renamed over it only when
    complete, so an interrupted run never leaves a half-written shard under the real name.
    """
    path = Path(path)
    takes = 0
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w") as tar:
            for key, members in samples:
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
                takes += 1
        record = {
            "file": path.name,
            "sha256": sha256_of(tmp),
            "bytes": tmp.stat().st_size,
            "takes": takes,
        }
    return record


def is_remote(shard_dir: str | Path) -> bool:
    """True for URLs and `pipe:` commands, which are read through webdataset.gopen."""
    text = str(shard_dir)
    return "://" in text or text.startswith("pipe:")


def shard_location(shard_dir: str | Path, file: str) -> str:
    """Where a file of the shard folder lives: a local path, a URL, or a `pipe:` command.

    A `{file}` placeholder in shard_dir is replaced by the file name (for pipe commands such
    as `pipe:curl -s https://host/frgan/{file}`); otherwise the name is appended.
    """
    text = str(shard_dir)
    if "{file}" in text:
        return text.replace("{file}", file)
    if is_remote(text):
        return f"{text.rstrip('/')}/{file}"
    return str(Path(text) / file)


def manifest_path(shard_dir: str | Path) -> Path:
    return Path(shard_dir) / MANIFEST_NAME


def load_manifest(shard_dir: str | Path) -> dict:
    """Read and check manifest.json of a local shard folder, a URL or a `pipe:` template."""
    location = shard_location(shard_dir, MANIFEST_NAME)
    if is_remote(shard_dir):
        import webdataset as wds

        with wds.gopen(location, "rb") as handle:
            manifest = json.loads(handle.read())
    else:
        if not Path(location).is_file():
            raise FileNotFoundError(
                f"No {MANIFEST_NAME} in {shard_dir}: prepare the data first "
                f"(python -m frgan.prepare data=<name>) or point data.shard_dir at prepared shards."
            )
        manifest = json.loads(Path(location).read_text())
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{location} has schema version {version}, this code reads version {SCHEMA_VERSION}; "
            f"re-run the preparation into a fresh shard_dir."
        )
    return manifest


def verify_shards(shard_dir: str | Path, shard_records: list[dict]) -> None:
    """Check every local shard against its manifest record; CorruptShard names the bad file."""
    for record in shard_records:
        path = Path(shard_dir) / record["file"]
        if not path.is_file():
            raise CorruptShard(
                f"Shard {path} listed in the manifest is missing; re-run the preparation."
            )
        size = path.stat().st_size
        if size != record["bytes"] or sha256_of(path) != record["sha256"]:
            raise CorruptShard(
                f"Shard {path} fails its checksum (size {size} bytes, manifest says {record['bytes']}); "
                f"it is truncated or corrupt: delete it and re-run the preparation to rebuild it."
            )


def _raise_naming_shard(error: Exception) -> bool:
    """webdataset error handler: re-raise as CorruptShard naming the shard (webdataset appends
    the shard's URL to the exception's args)."""
    if isinstance(error, CorruptShard):
        raise error
    sources = [arg for arg in error.args[1:] if isinstance(arg, str)]
    where = sources[-1] if sources else "a shard"
    raise CorruptShard(
        f"Shard {where} cannot be read ({type(error).__name__}: {error.args[0] if error.args else error}); "
        f"it is truncated or corrupt: re-run the preparation to rebuild it."
    ) from error


def shards_of_rank(shards, rank: int, world_size: int):
    """webdataset node splitter: every world_size-th shard, starting at this rank's index."""
    yield from itertools.islice(shards, rank, None, world_size)


def take_stream(
    urls: list[str],
    *,
    rank: int = 0,
    world_size: int = 1,
    shuffle_shards: bool = False,
    repeat: bool = False,
    seed: int = 0,
):
    """A webdataset pipeline yielding decoded TakeSamples from local paths, URLs or `pipe:` commands.

    Shards are split between DataLoader workers always, and between distributed ranks when
    world_size > 1 (each rank then reads a distinct set of shards). The rank is passed in
    rather than read from the environment, which differs between DDP launchers.
    """
    import webdataset as wds

    dataset = wds.WebDataset(
        urls,
        handler=_raise_naming_shard,
        shardshuffle=len(urls) if shuffle_shards else False,
        nodesplitter=partial(shards_of_rank, rank=rank, world_size=world_size),
        workersplitter=wds.split_by_worker,
        repeat=repeat,
        empty_check=False,
        seed=seed,
    )
    return dataset.map(decode_take, handler=_raise_naming_shard)
