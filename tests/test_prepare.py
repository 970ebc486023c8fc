"""Preparation: raw MUG-layout takes -> shards + manifest, bad inputs, resume, splits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from frgan.data.errors import CorruptShard, DataError
from frgan.data.layout import RawLayoutError, scan_raw_layout
from frgan.data.prepare import PrepareSettings, prepare_dataset
from frgan.data.shards import decode_take, load_manifest, take_stream, verify_shards
from frgan.data.splits import MUG_PAPER_SPLITS, fraction_split, paper_split
from frgan.render import mean_face68

FRAME_SIZE = 96


def face_landmarks(num_frames: int, size: int = FRAME_SIZE, shift: float = 0.0) -> np.ndarray:
    """A mean face drifting right and opening its mouth: float32 [T,68,3] in image pixels."""
    base = mean_face68(size, size, fill=0.45)
    frames = []
    for t in range(num_frames):
        face = base.copy()
        face[:, 0] += shift + 0.5 * t
        face[57:60, 1] += 0.3 * t  # lower lip
        frames.append(face)
    return np.stack(frames).astype(np.float32)


def draw_face(landmarks: np.ndarray, size: int = FRAME_SIZE, colour=(200, 160, 140)) -> np.ndarray:
    """RGB uint8 image of a face: filled hull of the landmarks and dark features."""
    image = np.full((size, size, 3), 40, np.uint8)
    points = np.round(landmarks[:, :2]).astype(np.int32)
    cv2.fillConvexPoly(image, cv2.convexHull(points), colour)
    for x, y in points[17:]:
        cv2.circle(image, (int(x), int(y)), 1, (60, 30, 30), -1)
    return image


def write_take(
    take_dir: Path, num_frames: int, *, start: int = 0, shift: float = 0.0, size: int = FRAME_SIZE
) -> Path:
    """A synthetic-like take: img_NNNN.jpg frames numbered from `start` and ground_truth.npz
    whose row k belongs to frame number k."""
    take_dir.mkdir(parents=True, exist_ok=True)
    landmarks = face_landmarks(start + num_frames, size, shift)
    for number in range(start, start + num_frames):
        image = draw_face(landmarks[number], size)
        cv2.imwrite(str(take_dir / f"img_{number:04d}.jpg"), image[..., ::-1])
    np.savez(take_dir / "ground_truth.npz", landmarks=landmarks)
    return take_dir


def write_raw_dataset(root: Path, subjects: int = 4, takes: int = 2, frames: int = 5) -> Path:
    """`subjects` subjects x 2 expressions x `takes` takes of `frames` frames, MUG layout."""
    for s in range(subjects):
        for expression in ("happiness", "surprise"):
            for k in range(takes):
                write_take(
                    root / f"s{s + 1:03d}" / expression / f"take{k:03d}", frames, shift=2.0 * s - k
                )
    (root / "dataset_card.json").write_text("{}")
    return root


def small_settings(**overrides) -> PrepareSettings:
    defaults = dict(
        image_size=64, takes_per_shard=2, split_fractions={"train": 0.5, "val": 0.25, "test": 0.25}
    )
    return PrepareSettings(**{**defaults, **overrides})


def read_all_takes(shard_dir: Path, manifest: dict) -> dict:
    urls = [str(shard_dir / record["file"]) for record in manifest["shards"]]
    return {take.key: take for take in take_stream(urls)}


def skipped_reason(manifest: dict, take: str) -> str | None:
    return next((s["reason"] for s in manifest["skipped"] if s["take"] == take), None)


def repairs_of(manifest: dict, take: str) -> list[str]:
    return next((r["repairs"] for r in manifest["repaired"] if r["take"] == take), [])


# ---------------------------------------------------------------- end to end


def test_ground_truth_end_to_end(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw")
    shard_dir = tmp_path / "shards"
    manifest = prepare_dataset(raw, shard_dir, small_settings(), dataset="handmade", progress=False)

    assert manifest == load_manifest(shard_dir)
    assert manifest["schema_version"] == 1 and manifest["image_size"] == 64
    assert manifest["prepare_config"]["landmarks"] == "ground_truth"
    assert manifest["skipped"] == [] and manifest["repaired"] == []
    assert sum(c["takes"] for c in manifest["counts"].values()) == 16
    assert sum(c["frames"] for c in manifest["counts"].values()) == 16 * 5
    verify_shards(shard_dir, manifest["shards"])

    takes = read_all_takes(shard_dir, manifest)
    take = takes["s001__happiness__take000"]
    assert take.frames.shape == (5, 64, 64, 3) and take.frames.dtype == np.uint8
    assert take.landmarks.shape == (5, 68, 3) and take.meta["source_frames"] == [0, 1, 2, 3, 4]
    # Landmarks were carried into the crop: the face fills the crop's centre, and the pixels
    # under the landmarks are face-coloured (the crop and the landmarks agree).
    xy = take.landmarks[0, :, :2]
    assert 0 < xy.min() and xy.max() < 64
    assert np.allclose(xy.mean(axis=0), 32, atol=6)
    jaw = np.round(take.landmarks[0, 3:14, :2] - (take.landmarks[0, 3:14, :2] - 32) * 0.15).astype(
        int
    )
    assert take.frames[0][jaw[:, 1], jaw[:, 0]].mean() > 100


def test_splits_disjoint_and_paper_lists():
    subjects = [f"s{i:03d}" for i in range(1, 30)]
    split = fraction_split(subjects, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    names = [s for members in split.values() for s in members]
    assert sorted(names) == subjects and all(split.values())
    assert split == fraction_split(
        list(reversed(subjects)), {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3
    )

    mug = paper_split(["001", "006", "028", "s007", "002"])
    assert mug == ({"train": ["001", "s007"], "val": ["006"], "test": ["028"]}, ["002"])
    all_ids = [s for ids in MUG_PAPER_SPLITS.values() for s in ids]
    assert len(all_ids) == len(set(all_ids)) == 50
    with pytest.raises(ValueError, match="sum to 1"):
        fraction_split(subjects, {"train": 0.5, "val": 0.1, "test": 0.1}, seed=0)


def test_paper_split_skips_unlisted_subjects(tmp_path):
    raw = tmp_path / "raw"
    for subject in ("001", "006", "028", "002"):
        write_take(raw / subject / "anger" / "take000", 3)
    manifest = prepare_dataset(
        raw, tmp_path / "shards", small_settings(split_method="paper"), progress=False
    )
    assert manifest["split"] == {"train": ["001"], "val": ["006"], "test": ["028"]}
    assert "paper's split lists" in skipped_reason(manifest, "002/anger/take000")


# ---------------------------------------------------------------- bad inputs


def test_bad_takes_are_skipped_or_repaired(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=5)
    bad = raw / "s001" / "happiness"
    # corrupt JPEG in the middle -> repaired from the previous frame
    write_take(bad / "corrupt", 5)
    (bad / "corrupt" / "img_0002.jpg").write_bytes(b"not a jpeg at all")
    # truncated JPEG at the end -> dropped
    write_take(bad / "truncated", 5)
    data = (bad / "truncated" / "img_0004.jpg").read_bytes()
    (bad / "truncated" / "img_0004.jpg").write_bytes(data[: len(data) // 2])
    # missing frame in the middle -> repaired
    write_take(bad / "gap", 6)
    (bad / "gap" / "img_0003.jpg").unlink()
    # fewer than 2 frames -> skipped
    write_take(bad / "single", 1)
    # a frame of another size -> treated as unusable, repaired
    write_take(bad / "sizes", 5)
    small = draw_face(face_landmarks(5, 48)[2], 48)
    cv2.imwrite(str(bad / "sizes" / "img_0002.jpg"), small[..., ::-1])
    # no face in the first two frames -> starts at the first frame with a face
    write_take(bad / "late_face", 5)
    gt = np.load(bad / "late_face" / "ground_truth.npz")["landmarks"].copy()
    gt[:2] = np.nan
    np.savez(bad / "late_face" / "ground_truth.npz", landmarks=gt)
    # no face at all -> skipped
    write_take(bad / "no_face", 4)
    np.savez(
        bad / "no_face" / "ground_truth.npz", landmarks=np.full((4, 68, 3), np.nan, np.float32)
    )
    # most frames unreadable -> too much repair, skipped
    write_take(bad / "mostly_broken", 6)
    for number in (1, 2, 3, 4):
        (bad / "mostly_broken" / f"img_{number:04d}.jpg").write_bytes(b"")
    # stray files and folders
    (raw / "notes.txt").write_text("hello")
    (bad / "gap" / "Thumbs.db").write_bytes(b"\0")
    (raw / "s002" / "surprise" / "take000" / "extra").mkdir()
    (raw / "s002" / "README").write_text("x")
    (raw / "empty_subject").mkdir()

    manifest = prepare_dataset(raw, tmp_path / "shards", small_settings(), progress=False)
    prefix = "s001/happiness/"
    assert "fewer than 2 frames" in skipped_reason(manifest, prefix + "single")
    assert "no face found" in skipped_reason(manifest, prefix + "no_face")
    assert "would need repair" in skipped_reason(manifest, prefix + "mostly_broken")
    assert any("unreadable" in note for note in repairs_of(manifest, prefix + "corrupt"))
    assert any(
        "filled from the previous" in note for note in repairs_of(manifest, prefix + "corrupt")
    )
    assert any("unreadable" in note for note in repairs_of(manifest, prefix + "truncated"))
    assert any("frames 3 missing" in note for note in repairs_of(manifest, prefix + "gap"))
    assert any("differ in size" in note for note in repairs_of(manifest, prefix + "sizes"))
    assert any(
        "no face in frames 0, 1" in note for note in repairs_of(manifest, prefix + "late_face")
    )

    takes = read_all_takes(tmp_path / "shards", manifest)
    assert takes["s001__happiness__corrupt"].meta["source_frames"] == [0, 1, 1, 3, 4]
    assert takes["s001__happiness__truncated"].meta["source_frames"] == [0, 1, 2, 3]
    assert takes["s001__happiness__gap"].meta["source_frames"] == [0, 1, 2, 2, 4, 5]
    assert takes["s001__happiness__late_face"].meta["source_frames"] == [2, 3, 4]
    assert len(takes["s001__happiness__sizes"].frames) == 5

    ignored = {item["path"]: item["reason"] for item in manifest["ignored"]}
    assert "stray file at the top level" in ignored["notes.txt"]
    assert "stray file" in ignored["s001/happiness/gap/Thumbs.db"]
    assert "stray folder" in ignored["s002/surprise/take000/extra"]
    assert "stray file in a subject folder" in ignored["s002/README"]
    assert "without <expression>" in ignored["empty_subject"]


def test_bad_settings_are_one_clear_error():
    with pytest.raises(ValueError, match="image_size must be one of"):
        small_settings(image_size=100)
    with pytest.raises(ValueError, match="data.prepare.image_format must be one of"):
        small_settings(image_format="gif")
    with pytest.raises(ValueError, match="data.prepare.landmarks must be one of"):
        small_settings(landmarks="dlib")


def test_wrong_top_level_layout_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_raw_layout(tmp_path / "missing")
    wrapped = tmp_path / "MUG"
    write_take(wrapped / "subjects3" / "001" / "anger" / "take000", 2)
    # frames one level too deep: no take is found, and the message says where they might be
    with pytest.raises(
        RawLayoutError,
        match=r"expected <raw_dir>/<subject>/<expression>/<take>/img_NNNN.jpg.*subjects3",
    ):
        scan_raw_layout(wrapped)
    flat = tmp_path / "flat"
    write_take(flat, 3)
    with pytest.raises(RawLayoutError, match="No takes found"):
        scan_raw_layout(flat)


# ---------------------------------------------------------------- resume, atomicity, checksums


def test_resume_keeps_finished_shards_and_rebuilds_damaged(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=4, takes=1, frames=3)
    shard_dir = tmp_path / "shards"
    first = prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    files = sorted(shard_dir.glob("*.tar"))
    stamps = {path.name: path.stat().st_mtime_ns for path in files}

    # damage one shard, delete another: only those two are redone
    damaged, deleted = files[0], files[1]
    damaged.write_bytes(damaged.read_bytes()[:100])
    deleted.unlink()
    second = prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    assert second["shards"] == first["shards"]
    for path in sorted(shard_dir.glob("*.tar")):
        if path not in (damaged, deleted):
            assert path.stat().st_mtime_ns == stamps[path.name]
    assert not list(shard_dir.glob(".*tmp*")), "temporary files left behind"

    with pytest.raises(DataError, match="image_size differ"):
        prepare_dataset(raw, shard_dir, small_settings(image_size=96), progress=False)


def test_checksum_error_names_the_file(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=3)
    shard_dir = tmp_path / "shards"
    manifest = prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    target = shard_dir / manifest["shards"][0]["file"]
    data = bytearray(target.read_bytes())
    data[600] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptShard, match=f"Shard .*{target.name} fails its checksum"):
        verify_shards(shard_dir, manifest["shards"])
    target.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CorruptShard, match=target.name):
        list(take_stream([str(target)]))


def test_parallel_preparation_matches_serial(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=3)
    serial = prepare_dataset(raw, tmp_path / "serial", small_settings(), progress=False)
    parallel = prepare_dataset(
        raw, tmp_path / "parallel", small_settings(), workers=2, progress=False
    )
    assert [s["sha256"] for s in serial["shards"]] == [s["sha256"] for s in parallel["shards"]]


def test_decoded_frames_round_trip(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=2)
    shard_dir = tmp_path / "png"
    manifest = prepare_dataset(raw, shard_dir, small_settings(image_format="png"), progress=False)
    take = next(iter(read_all_takes(shard_dir, manifest).values()))
    members = {"__key__": take.key, "landmarks.npy": b"", "json": json.dumps(take.meta).encode()}
    with pytest.raises(CorruptShard, match=take.key):
        decode_take(members)
