"""WebDataset shards of prepared takes and the manifest that describes them.

One tar sample per take, all members sharing the take's key:
  <key>.NNNN.jpg (or .png)  the cropped frames, in order
  <key>.landmarks.npy       float32 [T,P,3] in crop pixel coordinates (P = manifest landmark_points: 68 or 468)
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
import shlex
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from frgan.data.errors import CorruptShard, DataError
from frgan.data.splits import SPLIT_NAMES
from frgan.utils.files import atomic_path

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FRAME_MEMBER = re.compile(r"^(\d+)\.(jpg|png)$")
# a shard file name from a manifest: a plain name in the shard folder, nothing a shell or a
# path would read otherwise (it is pasted into `pipe:` commands, quoted too)
SHARD_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}")
# what a manifest must hold, and every shard record in it
MANIFEST_KEYS = ("image_size", "shards", "split", "counts", "skipped")
SHARD_RECORD_KEYS = ("file", "split", "sha256", "bytes", "takes", "take_frames")
REBUILD = (
    "re-run the preparation (python -m frgan.prepare with the same data options) to rebuild it"
)


class ShortShardWarning(UserWarning):
    """A shard held fewer takes or frames than its manifest record (data.tolerate_short_shards)."""


@dataclass
class TakeSample:
    """A prepared take: decoded frames, landmarks in crop coordinates, metadata."""

    key: str
    frames: np.ndarray  # uint8 [T,H,W,3] RGB
    landmarks: np.ndarray  # float32 [T,P,3], P = 68 or 468 (data.structure_mesh)
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


class DamagedTake(ValueError):
    """One take of a shard cannot be decoded or does not match its manifest record."""


def _decode(members: dict) -> TakeSample:
    """Decode a take's members; DamagedTake saying what is wrong with it."""
    key = members.get("__key__")
    names = sorted(
        (k for k in members if FRAME_MEMBER.match(k)), key=lambda k: int(k.split(".")[0])
    )
    try:
        frames = [
            cv2.imdecode(np.frombuffer(members[name], np.uint8), cv2.IMREAD_COLOR) for name in names
        ]
        if not frames or any(frame is None for frame in frames):
            raise ValueError("missing or undecodable frames")
        if [int(name.split(".")[0]) for name in names] != list(range(len(names))):
            raise ValueError(f"frame members are not numbered 0..{len(names) - 1}")
        landmarks = np.load(io.BytesIO(members["landmarks.npy"]))
        meta = json.loads(members["json"])
    except (KeyError, ValueError, OSError) as error:
        reason = f"no member {error.args[0]}" if isinstance(error, KeyError) else error
        raise DamagedTake(f"take {key} is damaged ({reason})") from error
    return TakeSample(
        key=key, frames=np.stack(frames)[..., ::-1].copy(), landmarks=landmarks, meta=meta
    )


def decode_take(members: dict) -> TakeSample:
    """Inverse of `encode_take`; accepts sample dicts (`__key__`, `__url__` + members)."""
    try:
        return _decode(members)
    except DamagedTake as error:
        url, text = members.get("__url__"), str(error)
        raise CorruptShard(f"T{text[1:]}{f' in shard {url}' if url else ''}; {REBUILD}.") from error


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
    takes, seen = 0, set()
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w") as tar:
            for key, members in samples:
                if not key or "." in key or "/" in key or key in seen:
                    raise DataError(
                        f"Cannot write take key {key!r} to {path.name}: keys must be unique and "
                        f"hold no '.' or '/' (a reader would merge or split its members)."
                    )
                seen.add(key)
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
    as `pipe:curl -s https://host/frgan/{file}`); otherwise the name is appended. In a `pipe:`
    command the name is shell-quoted: the command is the user's, the name the manifest's.
    """
    text = str(shard_dir)
    name = shlex.quote(file) if text.startswith("pipe:") else file
    if "{file}" in text:
        return text.replace("{file}", name)
    if is_remote(text):
        return f"{text.rstrip('/')}/{name}"
    return str(Path(text) / file)


def manifest_path(shard_dir: str | Path) -> Path:
    return Path(shard_dir) / MANIFEST_NAME


# how webdataset reports a `pipe:` command (or curl, for URLs) that failed
PIPE_EXIT = re.compile(r"\(\(\[?'?([^,\]']*).*: exit (-?\d+) \(read\)", re.DOTALL)


def _describe(error: BaseException) -> str:
    """`Type: reason` of an error, without the repr of its arguments."""
    pipe = PIPE_EXIT.search(str(error))
    if pipe:
        command = pipe.group(1).split()[0] if pipe.group(1).split() else "the command"
        return f"{command} exited with status {pipe.group(2)}"
    reason = getattr(error, "strerror", None) or (error.args[0] if error.args else "")
    return f"{type(error).__name__}: {reason}".rstrip(": ")


def load_manifest(shard_dir: str | Path) -> dict:
    """Read and check manifest.json of a local shard folder, a URL or a `pipe:` template."""
    location = shard_location(shard_dir, MANIFEST_NAME)
    if not is_remote(shard_dir) and not Path(location).is_file():
        if Path(shard_dir).is_file():
            raise NotADirectoryError(
                f"data.shard_dir {shard_dir} is a file; point it at the folder of prepared shards."
            )
        raise FileNotFoundError(
            f"No {MANIFEST_NAME} in {shard_dir}: prepare the data first "
            f"(python -m frgan.prepare data=<name>) or point data.shard_dir at prepared shards."
        )
    try:
        if is_remote(shard_dir):
            import webdataset as wds

            with wds.gopen(location, "rb") as handle:
                text = handle.read()
        else:
            text = Path(location).read_bytes()
    except (OSError, ValueError) as error:
        raise DataError(
            f"Cannot read {location} ({_describe(error)}); check data.shard_dir."
        ) from error
    return check_manifest(text, location)


def check_manifest(text: bytes | str, location: str) -> dict:
    """Parse manifest.json text; DataError naming `location` when it is damaged or too new."""
    try:
        manifest = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(
            f"{location} is damaged (not JSON: {error}); delete it and {REBUILD} "
            f"(finished shards are kept)."
        ) from error
    if not isinstance(manifest, dict):
        raise DataError(f"{location} is damaged (not a JSON object); delete it and {REBUILD}.")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{location} has schema version {version}, this code reads version {SCHEMA_VERSION}; "
            f"re-run the preparation into a fresh shard_dir."
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise DataError(f"{location} is damaged ({problem}); delete it and {REBUILD}.")
    return manifest


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the fields the readers rely on, or None."""
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        return f"missing {', '.join(missing)}"
    if not _is_count(manifest["image_size"]):
        return "image_size is not an integer"
    if not isinstance(manifest["shards"], list):
        return "shards is not a list"
    names = set()
    for index, record in enumerate(manifest["shards"]):
        where = f"shards[{index}]"
        if not isinstance(record, dict) or any(k not in record for k in SHARD_RECORD_KEYS):
            return f"{where} lacks {', '.join(SHARD_RECORD_KEYS)}"
        name = record["file"]
        if not isinstance(name, str) or not SHARD_FILE.fullmatch(name):
            return (
                f"{where}.file {str(name)[:60]!r} is not a plain file name in the shard folder "
                "(letters, digits, . _ + -)"
            )
        if name in names:
            return f"{name} is listed twice"
        names.add(name)
        if record["split"] not in SPLIT_NAMES:
            return f"{where}.split is not one of {', '.join(SPLIT_NAMES)}"
        if not (_is_count(record["takes"]) and _is_count(record["bytes"])):
            return f"{where}.takes or .bytes is not a count"
        lengths = record["take_frames"]
        if not (isinstance(lengths, list) and all(_is_count(n) for n in lengths)):
            return f"{where}.take_frames is not a list of counts"
        if len(lengths) != record["takes"]:
            return f"{where} lists {len(lengths)} take lengths for {record['takes']} takes"
    return None


def verify_shards(shard_dir: str | Path, shard_records: list[dict]) -> None:
    """Check every local shard against its manifest record; CorruptShard names the bad file."""
    for record in shard_records:
        path = Path(shard_dir) / record["file"]
        if not path.is_file():
            raise CorruptShard(f"Shard {path} listed in the manifest is missing; {REBUILD}.")
        size = path.stat().st_size
        if size != record["bytes"] or sha256_of(path) != record["sha256"]:
            raise CorruptShard(
                f"Shard {path} fails its checksum (size {size} bytes, manifest says "
                f"{record['bytes']}): it is truncated or corrupt; delete it and {REBUILD}."
            )


def shards_of_rank(shards, rank: int, world_size: int):
    """webdataset node splitter: every world_size-th shard, starting at this rank's index."""
    yield from itertools.islice(shards, rank, None, world_size)


def _tar_samples(stream, url: str) -> Iterator[dict]:
    """Members of a streamed tar grouped by key (the name up to its first dot), in order."""
    sample: dict = {}
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, dot, suffix = info.name.rpartition("/")[2].partition(".")
            if not dot:
                raise tarfile.ReadError(f"member {info.name!r} has no suffix")
            if sample and sample["__key__"] != key:
                yield sample
                sample = {}
            if not sample:
                sample = {"__key__": key, "__url__": url}
            handle = tar.extractfile(info)
            sample[suffix] = handle.read()
            if len(sample[suffix]) != info.size:
                raise tarfile.ReadError("unexpected end of data")
    if sample:
        yield sample


@dataclass
class ShardCount:
    """What a shard yielded so far against what its manifest record says it holds."""

    url: str
    record: dict | None
    takes: int = 0
    frames: int = 0

    @property
    def expected(self) -> tuple[int, int] | None:
        if self.record is None:
            return None
        return self.record["takes"], sum(self.record["take_frames"])

    def shortfall(self, problem: str | None = None) -> str | None:
        """A one-line account of what is missing, or None when the shard is whole."""
        if self.expected is None:
            return problem and f"Shard {self.url} {problem}"
        takes, frames = self.expected
        if problem is None and (self.takes, self.frames) == (takes, frames):
            return None
        if problem is None:
            problem = "ends early" if self.takes < takes else "does not match its manifest"
        return (
            f"Shard {self.url} {problem}; read {self.takes} of the {takes} takes and "
            f"{self.frames} of the {frames} frames the manifest lists"
        )


def _check_take(take: TakeSample, index: int, lengths: list, keys: list | None) -> None:
    """The index-th take of a shard against its manifest record (key and frame count)."""
    if index >= len(lengths):
        raise DamagedTake(f"take {take.key} is one more than the manifest lists")
    if keys is not None and take.key != keys[index]:
        raise DamagedTake(
            f"take {take.key} where the manifest lists {keys[index]}: "
            f"the file belongs to another manifest"
        )
    if len(take.frames) != lengths[index]:
        raise DamagedTake(
            f"take {take.key} has {len(take.frames)} frames, the manifest lists {lengths[index]}"
        )


def read_shard(url: str, record: dict | None = None, tolerate_short: bool = False):
    """Decoded TakeSamples of one shard (local path, URL or `pipe:` command).

    With `record` (the shard's manifest entry), the takes and frames read are accounted for:
    a shard that cannot be opened, breaks off, ends early or holds other takes raises
    CorruptShard naming it; with `tolerate_short` it warns (ShortShardWarning, with the
    counts) and the stream goes on with the next shard.
    """
    import webdataset as wds

    count = ShardCount(url, record)
    lengths = list(record["take_frames"]) if record is not None else None
    keys = record.get("take_keys") if record is not None else None  # absent in older manifests
    problem = None
    try:
        stream = wds.gopen(url, "rb")
    except (OSError, ValueError) as error:
        stream, problem = None, f"cannot be opened ({_describe(error)})"
    finished = False
    try:
        if stream is not None:
            try:
                for sample in _tar_samples(stream, url):
                    take = _decode(sample)
                    if lengths is not None:
                        _check_take(take, count.takes, lengths, keys)
                    count.takes += 1
                    count.frames += len(take.frames)
                    yield take
                finished = True
                stream.close()  # a `pipe:` command's exit status is checked here
            except DamagedTake as error:
                problem = f"is damaged: {error}"
            except (tarfile.TarError, OSError, EOFError, ValueError) as error:
                problem = f"cannot be read after take {count.takes} ({_exit_or(error, stream)})"
                finished = True
    finally:
        if stream is not None and not finished:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a stream the reader gave up on
                pass
    message = count.shortfall(problem)
    if message is None:
        return
    if tolerate_short:
        warnings.warn(
            f"{message}; going on without the rest (data.tolerate_short_shards=true).",
            ShortShardWarning,
            stacklevel=2,
        )
        return
    raise CorruptShard(
        f"{message}: it is truncated or damaged; {REBUILD} "
        f"(or set data.tolerate_short_shards=true to train on without its missing takes)."
    )


def _exit_or(error: BaseException, stream) -> str:
    """Why reading broke off: a failed `pipe:` command's exit status when there is one (a
    command that fails leaves an empty or cut stream), else the reading error."""
    try:
        stream.close()
    except Exception as closing:  # noqa: BLE001 - any failure to close says why
        if PIPE_EXIT.search(str(closing)):
            return _describe(closing)
    return _describe(error)


def _read_shards(sources, records: dict[str, dict] | None, tolerate_short: bool):
    for source in sources:
        url = source["url"]
        yield from read_shard(url, (records or {}).get(url), tolerate_short)


def take_stream(
    urls: list[str],
    *,
    records: dict[str, dict] | None = None,
    tolerate_short: bool = False,
    rank: int = 0,
    world_size: int = 1,
    worker: int | None = None,
    workers: int | None = None,
    shuffle_shards: bool = False,
    seed: int = 0,
):
    """A webdataset pipeline yielding decoded TakeSamples from local paths, URLs or `pipe:` commands.

    `records` maps each url to its manifest record, so that every shard is accounted for
    (see `read_shard`). Shards are split between DataLoader workers always, and between
    distributed ranks when world_size > 1 (each rank then reads a distinct set of shards).
    The rank is passed in rather than read from the environment, which differs between DDP
    launchers. `worker` of `workers` chooses a DataLoader worker's share (default: the worker
    this runs in).
    """
    import webdataset as wds

    by_worker = (
        wds.split_by_worker
        if workers is None
        else partial(shards_of_rank, rank=worker, world_size=workers)
    )
    stages = [
        wds.SimpleShardList(list(urls)),
        partial(shards_of_rank, rank=rank, world_size=world_size),
        by_worker,
    ]
    if shuffle_shards:
        stages.append(wds.filters.shuffle(len(urls), seed=seed))
    stages.append(partial(_read_shards, records=records, tolerate_short=tolerate_short))
    return wds.DataPipeline(*stages)
