"""prepare_dataset: every take of a raw folder into shards, resuming finished ones."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from frgan.data.layout import RawLayout, scan_raw_layout
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
from frgan.data.shards import load_manifest, manifest_path, write_shard
from frgan.data.splits import SPLIT_NAMES
from frgan.utils.files import (
    UNWRITABLE,
    UnwritableError,
    remove_stale_temporaries,
    reporting_unwritable,
    write_json_atomic,
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
        plan.name: (None if overwrite else finished_part(shard_dir, plan, digest, console))
        for plan in plans
    }
    todo = [plan for plan in plans if parts[plan.name] is None]
    kept = len(plans) - len(todo)
    console.print(
        f"[bold]prepare[/] {len(layout.takes)} takes of {len(layout.subjects)} subjects from {layout.root} -> {shard_dir} "
        f"({len(plans)} shards, {kept} already done{', ' + str(workers) + ' workers' if workers else ''})"
    )

    pending = [take for plan in todo for take in plan.takes]
    results = run_takes(pending, settings, workers, progress, console)
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

    manifest = assemble_manifest(
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
