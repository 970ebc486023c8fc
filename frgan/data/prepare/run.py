"""prepare_dataset: every take of a raw folder into shards, resuming finished ones."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from frgan.data.layout import RawLayout, scan_raw_layout
from frgan.data.prepare.contact_sheet import SHEETS_DIR, write_contact_sheets
from frgan.data.prepare.plan import (
    PARTS_DIR,
    ShardPlan,
    assemble_manifest,
    check_same_settings,
    finished_part,
    plan_shards,
)
from frgan.data.prepare.pool import run_takes
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.prepare.takes import TakeResult
from frgan.data.shards import load_manifest, manifest_path, write_shard
from frgan.data.splits import SPLIT_NAMES
from frgan.data.video_layout import VideoLayout, scan_video_layout
from frgan.utils.files import (
    UNWRITABLE,
    UnwritableError,
    remove_stale_temporaries,
    reporting_unwritable,
    write_json_atomic,
)


def scan_layout(raw_dir: str | Path, settings: PrepareSettings) -> RawLayout | VideoLayout:
    """The takes of a MUG-layout folder, or the video sources of a folder (data=videos)."""
    if settings.videos is None:
        return scan_raw_layout(
            raw_dir, list(settings.expressions) if settings.expressions else None
        )
    video = settings.video_settings()
    return scan_video_layout(
        raw_dir,
        subject_level=video.subject_level,
        label_level=video.label_level,
        listing=video.listing,
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
    layout = scan_layout(raw_dir, settings)
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
    layout: RawLayout | VideoLayout,
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
        plan.name: (None if overwrite else finished_part(shard_dir, plan, digest, console))
        for plan in plans
    }
    todo = [plan for plan in plans if parts[plan.name] is None]
    kept = len(plans) - len(todo)
    units = "takes" if settings.videos is None else "videos and frame folders"
    console.print(
        f"[bold]prepare[/] {len(layout.takes)} {units} of {len(layout.subjects)} subjects from {layout.root} -> {shard_dir} "
        f"({len(plans)} shards, {kept} already done{', ' + str(workers) + ' workers' if workers else ''})"
    )

    pending = [take for plan in todo for take in plan.takes]
    results = run_takes(pending, settings, workers, progress, console)
    try:
        for plan in todo:
            take_results = [result for _ in plan.takes for result in next(results)]
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
                "skipped": [skip_entry(r) for r in take_results if r.skipped],
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

    manifest = assemble_manifest(
        dataset, layout, settings, digest, split, plans, parts, unassigned_skips
    )
    changed = not _stored_manifest_equals(shard_dir, manifest)
    if changed:  # a finished read-only folder stays as is
        write_json_atomic(manifest_path(shard_dir), manifest, sort_keys=True)
    if settings.videos is not None and (changed or todo or not (shard_dir / SHEETS_DIR).is_dir()):
        sheets = write_contact_sheets(shard_dir, manifest)
        console.print(f"[bold]prepare[/] {len(sheets)} contact sheets in {shard_dir / SHEETS_DIR}")
    return manifest


def skip_entry(result: TakeResult) -> dict:
    """A skipped take (or rejected stretch of a video, with its frame count) in the manifest."""
    entry = {"take": result.take, "reason": result.skipped}
    if result.rejected_frames is not None:
        entry["frames"] = result.rejected_frames
    return entry


def _stored_manifest_equals(shard_dir: Path, manifest: dict) -> bool:
    try:
        return json.loads(manifest_path(shard_dir).read_bytes()) == manifest
    except (OSError, ValueError):
        return False


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
    frames = Counter()
    for skip in manifest["skipped"]:  # data=videos: rejected stretches carry their frame count
        frames[skip["reason"].split(" (")[0]] += skip.get("frames", 0)
    what = "takes"
    if frames:  # data=videos
        what = f"stretches ({sum(frames.values())} frames)"
    console.print(
        f"skipped {len(manifest['skipped'])} {what}, repaired {len(manifest['repaired'])}, "
        f"ignored {len(manifest['ignored'])} paths (each with its reason in manifest.json)"
    )
    for reason, count in reasons.most_common():
        console.print(
            f"  {count:4d} x {reason}" + (f" ({frames[reason]} frames)" if frames[reason] else ""),
            markup=False,
        )
