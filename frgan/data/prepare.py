"""Raw MUG-layout folder -> WebDataset shards + manifest.json.

Per take: load frames -> validate/repair -> landmarks -> crop -> resize -> encode. A take
that cannot be used is skipped with its reason; one bad take never stops the run. Takes
are assigned to shards before any work starts, so a re-run finds the same shards, keeps
the finished ones (checked by sha256) and only redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from frgan.data.crop import crop_boxes, crop_frames, landmarks_to_crop
from frgan.data.errors import DataError, LandmarkSourceUnavailable
from frgan.data.landmarks import SOURCE_NAMES, build_landmark_source
from frgan.data.layout import RawLayout, Take, scan_raw_layout
from frgan.data.shards import (
    SCHEMA_VERSION,
    SHARD_RECORD_KEYS,
    TakeSample,
    encode_take,
    load_manifest,
    manifest_path,
    sha256_of,
    write_shard,
)
from frgan.data.smoothing import SMOOTHING_METHODS, smoother
from frgan.data.splits import SPLIT_NAMES, make_split
from frgan.data.topology import check_source, structure_mesh
from frgan.utils.files import (
    UNWRITABLE,
    UnwritableError,
    remove_stale_temporaries,
    reporting_unwritable,
    write_json_atomic,
)
from frgan.utils.stops import exit_quietly_on_stop

SUPPORTED_IMAGE_SIZES = (64, 96, 128)
PARTS_DIR = "parts"
PART_KEYS = ("config_digest", "take_keys", "shard", "skipped", "repaired")
# A frame whose pixels vary less than this (standard deviation, 0..255) is blank: a flat grey,
# black or white picture (a capture glitch), never a face, whatever the landmark source says.
BLANK_FRAME_STD = 4.0


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
    split_method: str = "fractions"  # or "paper" (MUG subject lists)
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

    def __post_init__(self) -> None:
        """Check the settings up front: a bad value is one config error, not every take skipped."""
        check_image_size(self.image_size)
        choices = {
            "landmarks": SOURCE_NAMES,
            "crop_border": ("edge", "black"),
            "split_method": ("fractions", "paper"),
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
}


@dataclass
class TakeResult:
    take: str  # subject/expression/take, as in the manifest
    key: str
    members: dict[str, bytes] | None  # None when skipped
    frames: int = 0
    skipped: str | None = None
    repairs: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- one take


def _load_frame(path: Path) -> np.ndarray:
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
            frames.append(_load_frame(path))
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


# ---------------------------------------------------------------- the whole folder

_WORKER_PROCESSOR: TakeProcessor | None = None  # one per pool process (holds the landmark model)


def _init_worker(settings: PrepareSettings) -> None:
    global _WORKER_PROCESSOR
    exit_quietly_on_stop()
    _WORKER_PROCESSOR = TakeProcessor(settings)


def _process_in_worker(take: Take) -> TakeResult:
    return _WORKER_PROCESSOR(take)


@dataclass
class ShardPlan:
    name: str
    split: str
    takes: list[Take]

    @property
    def keys(self) -> list[str]:
        return [take.key for take in self.takes]


def plan_shards(
    layout: RawLayout, settings: PrepareSettings
) -> tuple[list[ShardPlan], dict, list[dict]]:
    """Assign subjects to splits and takes to shards: (plans, split, skipped unassigned takes)."""
    split, unassigned = make_split(
        layout.subjects, settings.split_method, settings.split_fractions, settings.split_seed
    )
    plans, skipped = [], []
    for split_name in SPLIT_NAMES:
        takes = [take for take in layout.takes if take.subject in set(split[split_name])]
        for start in range(0, len(takes), settings.takes_per_shard):
            number = start // settings.takes_per_shard
            plans.append(
                ShardPlan(
                    f"{split_name}-{number:06d}",
                    split_name,
                    takes[start : start + settings.takes_per_shard],
                )
            )
    for take in layout.takes:
        if take.subject in set(unassigned):
            skipped.append(
                {"take": take.label, "reason": "subject in none of the paper's split lists"}
            )
    skipped += [{"take": t.label, "reason": t.reason} for t in layout.unreadable_takes]
    return plans, split, skipped


def read_part(part_file: Path) -> dict:
    """A shard's part record, checked; DataError naming the file when it is damaged."""
    try:
        part = json.loads(part_file.read_bytes())
        record = part["shard"]
        if not all(key in part for key in PART_KEYS) or not (
            record is None or all(key in record for key in (*SHARD_RECORD_KEYS, "frames"))
        ):
            raise ValueError("fields are missing")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{part_file} is damaged ({error})") from error
    return part


def _finished_part(
    shard_dir: Path, plan: ShardPlan, digest: str, console: Console | None = None
) -> dict | None:
    """The stored record of a shard finished by an earlier run with the same settings, if valid;
    a damaged record is reported and its shard rebuilt."""
    part_file = shard_dir / PARTS_DIR / f"{plan.name}.json"
    if not part_file.is_file():
        return None
    try:
        part = read_part(part_file)
    except DataError as error:
        if console is not None:
            console.print(
                f"warning: {error}: rebuilding shard {plan.name}", style="yellow", markup=False
            )
        return None
    if part.get("config_digest") != digest or part.get("take_keys") != plan.keys:
        return None
    record = part["shard"]
    if record is not None:
        path = shard_dir / record["file"]
        if (
            not path.is_file()
            or path.stat().st_size != record["bytes"]
            or sha256_of(path) != record["sha256"]
        ):
            return None
    return part


def check_same_settings(manifest: dict, settings: PrepareSettings, shard_dir: str | Path) -> None:
    """Refuse to use or extend shards prepared with other settings (DataError naming them)."""
    stored, current = manifest.get("prepare_config", {}), settings.as_dict()
    changed = sorted(
        key for key in set(stored) | set(current) if stored.get(key) != current.get(key)
    )
    meshes = (stored.get("structure_mesh", "face68"), current.get("structure_mesh", "face68"))
    if meshes[0] != meshes[1]:
        raise DataError(
            f"{shard_dir} holds {meshes[0]} landmarks ({structure_mesh(meshes[0]).num_points} "
            f"points) but data.structure_mesh={meshes[1]}; prepare the {meshes[1]} shards into "
            "another data.shard_dir (the default shard_dir differs per mesh: leave it unset)"
        )
    if changed:
        raise DataError(
            f"{shard_dir} holds shards prepared with other settings ({', '.join(changed)} differ). "
            f"Use another data.shard_dir, or rebuild with data.prepare.overwrite=true."
        )


def prepare_dataset(
    raw_dir: str | Path,
    shard_dir: str | Path,
    settings: PrepareSettings,
    *,
    dataset: str = "dataset",
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict:
    """Prepare every take of `raw_dir` into shards under `shard_dir`; returns the manifest."""
    console = console or Console(stderr=True, soft_wrap=True)
    shard_dir = Path(shard_dir)
    if shard_dir.exists() and not shard_dir.is_dir():
        raise NotADirectoryError(
            f"data.shard_dir {shard_dir} is a file; set it to a folder for the shards."
        )
    digest = settings.digest()
    if manifest_path(shard_dir).is_file() and not overwrite:
        check_same_settings(load_manifest(shard_dir), settings, shard_dir)

    # the raw folder is read before anything is written: a bad raw_dir leaves no trace
    layout = scan_raw_layout(raw_dir, list(settings.expressions) if settings.expressions else None)
    plans, split, unassigned_skips = plan_shards(layout, settings)
    created = not shard_dir.exists()
    then = "then re-run the preparation (finished shards are kept)"
    try:
        with reporting_unwritable(shard_dir, "data.shard_dir", then):
            manifest = _write_shards(
                shard_dir,
                layout,
                settings,
                digest,
                plans,
                split,
                unassigned_skips,
                dataset=dataset,
                workers=workers,
                overwrite=overwrite,
                progress=progress,
                console=console,
            )
    finally:
        if created and shard_dir.is_dir() and not any(shard_dir.iterdir()):
            shard_dir.rmdir()
    print_summary(manifest, console)
    return manifest


def _write_shards(
    shard_dir: Path,
    layout: RawLayout,
    settings: PrepareSettings,
    digest: str,
    plans: list[ShardPlan],
    split: dict,
    unassigned_skips: list[dict],
    *,
    dataset: str,
    workers: int,
    overwrite: bool,
    progress: bool,
    console: Console,
) -> dict:
    """Write the shards not finished yet, their part records and the manifest."""
    try:
        shard_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno in UNWRITABLE:
            raise
        raise UnwritableError(
            f"Cannot create data.shard_dir {shard_dir} ({type(error).__name__}: "
            f"{error.strerror or error}); set data.shard_dir to a folder you can write."
        ) from error
    parts_dir = shard_dir / PARTS_DIR
    removed = remove_stale_temporaries(shard_dir) + remove_stale_temporaries(parts_dir)
    if removed:
        console.print(
            f"[bold]prepare[/] removed {len(removed)} temporary file(s) left by an interrupted run"
        )
    parts = {
        plan.name: (None if overwrite else _finished_part(shard_dir, plan, digest, console))
        for plan in plans
    }
    todo = [plan for plan in plans if parts[plan.name] is None]
    kept = len(plans) - len(todo)
    console.print(
        f"[bold]prepare[/] {len(layout.takes)} takes of {len(layout.subjects)} subjects from {layout.root} -> {shard_dir} "
        f"({len(plans)} shards, {kept} already done{', ' + str(workers) + ' workers' if workers else ''})"
    )

    pending = [take for plan in todo for take in plan.takes]
    results = _run_takes(pending, settings, workers, progress, console)
    try:
        for plan in todo:
            take_results = [next(results) for _ in plan.takes]
            written = [(r.key, r.members) for r in take_results if r.members is not None]
            record = write_shard(shard_dir / f"{plan.name}.tar", written) if written else None
            if record is not None:
                record.update(
                    split=plan.split,
                    frames=sum(r.frames for r in take_results),
                    take_frames=[r.frames for r in take_results if r.members is not None],
                    take_keys=[r.key for r in take_results if r.members is not None],
                )
            part = {
                "config_digest": digest,
                "take_keys": plan.keys,
                "shard": record,
                "skipped": [
                    {"take": r.take, "reason": r.skipped} for r in take_results if r.skipped
                ],
                "repaired": [
                    {"take": r.take, "repairs": r.repairs}
                    for r in take_results
                    if r.members is not None and r.repairs
                ],
            }
            parts_dir.mkdir(exist_ok=True)
            write_json_atomic(parts_dir / f"{plan.name}.json", part, sort_keys=True)
            parts[plan.name] = part
    finally:
        results.close()

    manifest = _assemble_manifest(
        dataset, layout, settings, digest, split, plans, parts, unassigned_skips
    )
    if not _stored_manifest_equals(shard_dir, manifest):  # a finished read-only folder stays as is
        write_json_atomic(manifest_path(shard_dir), manifest, sort_keys=True)
    return manifest


def _stored_manifest_equals(shard_dir: Path, manifest: dict) -> bool:
    try:
        return json.loads(manifest_path(shard_dir).read_bytes()) == manifest
    except (OSError, ValueError):
        return False


def _run_takes(
    takes: list[Take], settings: PrepareSettings, workers: int, progress: bool, console: Console
):
    """Yield TakeResults in the order of `takes`, processing them in `workers` processes."""
    columns = (
        TextColumn("[bold]takes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]:.1f} takes/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("prepare", total=len(takes), skipped=0, rate=0.0)
        start, skipped = time.perf_counter(), 0
        if workers and workers > 0 and takes:
            # spawn: landmark backends (torch, mediapipe) are not fork-safe once initialised
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
                stream = pool.imap(_process_in_worker, takes, chunksize=1)
                for done, result in enumerate(stream, start=1):
                    skipped += result.skipped is not None
                    bar.update(
                        task,
                        completed=done,
                        skipped=skipped,
                        rate=done / (time.perf_counter() - start),
                    )
                    yield result
        else:
            processor = TakeProcessor(settings)
            for done, take in enumerate(takes, start=1):
                result = processor(take)
                skipped += result.skipped is not None
                bar.update(
                    task, completed=done, skipped=skipped, rate=done / (time.perf_counter() - start)
                )
                yield result


def _assemble_manifest(
    dataset, layout, settings, digest, split, plans, parts, unassigned_skips
) -> dict:
    shards = [parts[p.name]["shard"] for p in plans if parts[p.name]["shard"] is not None]
    counts = {
        name: {
            "shards": sum(s["split"] == name for s in shards),
            "takes": sum(s["takes"] for s in shards if s["split"] == name),
            "frames": sum(s["frames"] for s in shards if s["split"] == name),
        }
        for name in SPLIT_NAMES
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "image_size": settings.image_size,
        "structure_mesh": settings.structure_mesh,
        "landmark_points": structure_mesh(settings.structure_mesh).num_points,
        "raw_dir": str(layout.root),
        "prepare_config": settings.as_dict(),
        "config_digest": digest,
        "split": split,
        "counts": counts,
        "shards": shards,
        "skipped": unassigned_skips + [s for p in plans for s in parts[p.name]["skipped"]],
        "repaired": [r for p in plans for r in parts[p.name]["repaired"]],
        "ignored": [{"path": i.path, "reason": i.reason} for i in layout.ignored],
    }


def print_summary(manifest: dict, console: Console) -> None:
    table = Table(title=f"{manifest['dataset']} @ {manifest['image_size']} px")
    for column in ("split", "subjects", "shards", "takes", "frames"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for name in SPLIT_NAMES:
        c = manifest["counts"][name]
        table.add_row(
            name,
            str(len(manifest["split"][name])),
            str(c["shards"]),
            str(c["takes"]),
            str(c["frames"]),
        )
    console.print(table)
    reasons = Counter(s["reason"].split(" (")[0] for s in manifest["skipped"])
    console.print(
        f"skipped {len(manifest['skipped'])} takes, repaired {len(manifest['repaired'])}, ignored {len(manifest['ignored'])} paths"
    )
    for reason, count in reasons.most_common():
        console.print(f"  {count:4d} x {reason}")
