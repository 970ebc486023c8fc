"""Subjects to splits and takes to shards; the part record of each finished shard; the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from frgan.data.errors import DataError
from frgan.data.layout import RawLayout, Take
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.shards import SCHEMA_VERSION, SHARD_RECORD_KEYS, sha256_of
from frgan.data.splits import SPLIT_NAMES, make_split
from frgan.data.topology import structure_mesh
from frgan.data.video_layout import VideoLayout, VideoSource
from frgan.errors import ConfigError

PARTS_DIR = "parts"
PART_KEYS = ("config_digest", "take_keys", "shard", "skipped", "repaired")


@dataclass
class ShardPlan:
    name: str
    split: str
    takes: list[Take | VideoSource]  # a video source gives any number of takes

    @property
    def keys(self) -> list[str]:
        return [take.key for take in self.takes]


def plan_shards(
    layout: RawLayout | VideoLayout, settings: PrepareSettings
) -> tuple[list[ShardPlan], dict, list[dict]]:
    """Assign subjects to splits and takes to shards: (plans, split, skipped unassigned takes).

    For data=videos the units planned are video sources, each giving any number of takes."""
    listed = getattr(layout, "listed_split", None)
    if listed and settings.split_method != "listing":
        raise ConfigError(
            "the listing gives each subject a split: set data.prepare.split_method=listing to "
            f"use it (split_method={settings.split_method} would ignore it), or drop its split column"
        )
    split, unassigned = make_split(
        layout.subjects,
        settings.split_method,
        settings.split_fractions,
        settings.split_seed,
        listed=listed,
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
                if settings.split_method == "paper"
                else {"take": take.label, "reason": "subject has no split in the listing"}
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


def finished_part(
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


def assemble_manifest(
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
