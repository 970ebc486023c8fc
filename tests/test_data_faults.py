"""Faults on the data side: damaged or short shards (memory and stream mode, local, file://
and pipe:), worker errors, folded sample keys, unreadable raw folders, full or read-only
shard folders, damaged manifest and part records, stale temporaries and blank frames."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_datamodule import build_datamodule
from test_prepare import (
    read_all_takes,
    repairs_of,
    skipped_reason,
    small_settings,
    write_raw_dataset,
    write_take,
)

from frgan.data import layout as layout_module
from frgan.data.errors import CorruptShard, DataError
from frgan.data.layout import RawLayoutError, scan_raw_layout
from frgan.data.prepare import prepare_dataset
from frgan.data.shards import ShortShardWarning, decode_take, take_stream, write_shard
from frgan.utils.cli import report_user_errors
from frgan.utils.files import UnwritableError


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """4 subjects x 2 expressions x 1 take x 3 frames at 64 px, 2 takes per shard."""
    tmp = tmp_path_factory.mktemp("faults")
    write_raw_dataset(tmp / "raw", subjects=4, takes=1, frames=3)
    build_datamodule(tmp).prepare_data()
    return tmp


def copy_of(prepared: Path, tmp_path: Path) -> Path:
    shutil.copytree(prepared / "shards", tmp_path / "shards")
    return tmp_path


def second_take_offset(shard: Path) -> int:
    """Byte offset of the header of the second take's first member (a take boundary)."""
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    first_key = members[0].name.split(".")[0]
    return next(m.offset for m in members if m.name.split(".")[0] != first_key)


def cut_at_take_boundary(shard: Path) -> None:
    shard.write_bytes(shard.read_bytes()[: second_take_offset(shard)])


def damage_header_at_take_boundary(shard: Path) -> None:
    data = bytearray(shard.read_bytes())
    offset = second_take_offset(shard)
    data[offset : offset + 512] = b"\x7f" * 512
    shard.write_bytes(bytes(data))


def train_shard(tmp: Path) -> Path:
    return sorted((tmp / "shards").glob("train-*.tar"))[0]


def read_split(datamodule, split: str) -> list[dict]:
    datamodule.setup({"train": "fit", "val": "validate", "test": "test"}[split])
    loader = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader}[split]()
    return list(loader)


# ---------------------------------------------------------------- short and damaged shards


@pytest.mark.parametrize("damage", [cut_at_take_boundary, damage_header_at_take_boundary])
@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_short_shard_is_an_error_naming_it(prepared, tmp_path, damage, mode):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    damage(victim)
    # checksums off: what is read must still match what the manifest says the shard holds
    datamodule = build_datamodule(tmp, mode=mode, verify_checksums=False)
    with pytest.raises(CorruptShard) as caught:
        read_split(datamodule, "train")
    message = str(caught.value)
    assert victim.name in message and "\n" not in message
    assert "read 1 of the 2 takes" in message and "tolerate_short_shards" in message


@pytest.mark.parametrize("scheme", ["file", "pipe"])
def test_short_remote_shard_is_an_error_naming_it(prepared, tmp_path, scheme):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    cut_at_take_boundary(victim)
    shard_dir = (
        f"file://{tmp / 'shards'}" if scheme == "file" else f"'pipe:cat {tmp}/shards/{{file}}'"
    )
    # data.verify_checksums=true: remote shards cannot be checked up front, but are accounted for
    for mode in ("memory", "stream"):
        datamodule = build_datamodule(tmp, mode=mode, shard_dir=shard_dir)
        with pytest.raises(CorruptShard, match=f"{victim.name} ends early; read 1 of the 2 takes"):
            read_split(datamodule, "train")


def test_tolerated_short_shard_warns_with_counts(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    cut_at_take_boundary(victim)
    whole = build_datamodule(prepared, mode="memory")
    whole.setup("fit")
    for mode in ("memory", "stream"):
        datamodule = build_datamodule(
            tmp, mode=mode, verify_checksums=False, tolerate_short_shards=True
        )
        with pytest.warns(ShortShardWarning, match=f"{victim.name} ends early.*1 of the 2 takes"):
            batches = read_split(datamodule, "train")
        keys = {key for batch in batches for key in batch["take"]}
        assert keys and len(keys) < len(whole.datasets["train"].takes)


def test_swapped_remote_shard_is_refused(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    train, val = train_shard(tmp), sorted((tmp / "shards").glob("val-*.tar"))[0]
    data = train.read_bytes()
    train.write_bytes(val.read_bytes())
    val.write_bytes(data)
    datamodule = build_datamodule(tmp, mode="memory", shard_dir=f"file://{tmp / 'shards'}")
    with pytest.raises(CorruptShard, match=f"{train.name} is damaged: take .* where the manifest"):
        read_split(datamodule, "train")


def test_missing_shard_with_checks_off_is_named(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    victim.unlink()
    for mode in ("memory", "stream"):
        datamodule = build_datamodule(tmp, mode=mode, verify_checksums=False)
        with pytest.raises(CorruptShard) as caught:
            read_split(datamodule, "train")
        message = str(caught.value)
        assert f"Shard {victim} cannot be opened (FileNotFoundError: No such file" in message
    piped = build_datamodule(tmp, mode="memory", shard_dir=f"'pipe:cat {tmp}/shards/{{file}}'")
    with pytest.raises(CorruptShard) as caught:
        read_split(piped, "train")
    assert f"{victim.name} cannot be read after take 0 (cat exited with status 1)" in str(
        caught.value
    )
    with pytest.raises(DataError, match=r"Cannot read pipe:false manifest.json \(false exited"):
        build_datamodule(tmp, shard_dir="'pipe:false {file}'").setup("fit")


def test_damaged_shard_in_two_workers_is_one_line(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    for shard in (tmp / "shards").glob("train-*.tar"):
        damage_header_at_take_boundary(shard)
    datamodule = build_datamodule(tmp, mode="stream", num_workers=2, verify_checksums=False)
    with pytest.raises(CorruptShard) as caught:
        read_split(datamodule, "train")
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message and "train-" in message


def test_take_with_a_missing_frame_member_is_damaged(tmp_path):
    frame = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    landmarks = tmp_path / "l.npy"
    np.save(landmarks, np.zeros((2, 68, 3), np.float32))
    members = {
        "0000.png": frame,
        "0002.png": frame,
        "landmarks.npy": landmarks.read_bytes(),
        "json": b"{}",
    }
    with pytest.raises(CorruptShard, match=r"^Take S1__K is damaged \(.*not numbered 0..1.*x.tar"):
        decode_take({"__key__": "S1__K", "__url__": "x.tar", **members})
    for key in ("a.b", "a/b"):
        with pytest.raises(DataError, match="keys must be unique"):
            write_shard(tmp_path / "bad.tar", [(key, members)])
    with pytest.raises(DataError, match="keys must be unique"):
        write_shard(tmp_path / "bad.tar", [("k", members), ("k", members)])
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob(".*"))


# ---------------------------------------------------------------- keys, folders, disks


def test_folder_names_that_fold_get_distinct_keys(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=2)
    for name in ("take.1", "take_1", "_take", "take__x"):
        write_take(raw / "s001" / "happiness" / name, 2)
    settings = small_settings(takes_per_shard=8)
    manifest = prepare_dataset(raw, tmp_path / "shards", settings, progress=False)
    takes = read_all_takes(tmp_path / "shards", manifest)
    labels = {take.meta["take"] for take in takes.values() if take.meta["subject"] == "s001"}
    assert {"take.1", "take_1", "_take", "take__x"} <= labels
    again = prepare_dataset(raw, tmp_path / "shards", settings, progress=False)
    assert again["shards"] == manifest["shards"]
    assert len(read_all_takes(tmp_path / "shards", again)) == len(takes)


def unreadable(monkeypatch, *folders: Path) -> None:
    """Make listing these folders fail as it does for a user without read permission."""
    real = layout_module.list_folder

    def list_folder(directory: Path):
        if directory in folders:
            raise PermissionError(errno.EACCES, "Permission denied", str(directory))
        return real(directory)

    monkeypatch.setattr(layout_module, "list_folder", list_folder)


def test_unreadable_take_is_skipped_and_unreadable_root_is_one_error(tmp_path, monkeypatch):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=2, frames=2)
    unreadable(monkeypatch, raw / "s001" / "happiness" / "take001", raw / "s002" / "surprise")
    manifest = prepare_dataset(raw, tmp_path / "shards", small_settings(), progress=False)
    reason = skipped_reason(manifest, "s001/happiness/take001")
    assert reason == "folder cannot be read (PermissionError: Permission denied)"
    ignored = {item["path"]: item["reason"] for item in manifest["ignored"]}
    assert "cannot be read" in ignored["s002/surprise"]
    assert sum(c["takes"] for c in manifest["counts"].values()) == 8 - 1 - 2

    unreadable(monkeypatch, raw)
    with pytest.raises(RawLayoutError, match=f"{raw} cannot be read .*Permission denied.*chmod"):
        scan_raw_layout(raw)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        scan_raw_layout(raw / "dataset_card.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_chmod_unreadable_take_is_skipped(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=2, frames=2)
    locked = raw / "s001" / "happiness" / "take001"
    locked.chmod(0)
    try:
        manifest = prepare_dataset(raw, tmp_path / "shards", small_settings(), progress=False)
    finally:
        locked.chmod(0o755)
    assert "cannot be read (PermissionError" in skipped_reason(manifest, "s001/happiness/take001")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_shard_dir_is_one_line(tmp_path, monkeypatch, capsys, code):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=2)
    shard_dir = tmp_path / "shards"
    first = prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    victim = shard_dir / first["shards"][1]["file"]
    victim.unlink()
    kept = {p.name: p.read_bytes() for p in shard_dir.glob("*.tar")}

    def refuse(self, *args, **kwargs):
        raise OSError(code, "simulated", str(self.name))

    monkeypatch.setattr(tarfile.TarFile, "addfile", refuse)
    task = report_user_errors(
        lambda: prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    )
    with pytest.raises(SystemExit) as exit_info:
        task()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(shard_dir) in lines[0] and "data.shard_dir" in lines[0]
    assert ("no space left" if code == errno.ENOSPC else "read-only") in lines[0]
    assert {p.name: p.read_bytes() for p in shard_dir.glob("*.tar")} == kept
    assert not [p for p in shard_dir.rglob(".*") if "tmp" in p.name]

    monkeypatch.undo()
    assert prepare_dataset(raw, shard_dir, small_settings(), progress=False) == first
    # a finished folder that became read-only: re-running the preparation writes nothing
    monkeypatch.setattr(tarfile.TarFile, "addfile", refuse)
    monkeypatch.setattr("frgan.data.prepare.run.write_json_atomic", refuse)
    assert prepare_dataset(raw, shard_dir, small_settings(), progress=False) == first


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=2)
    shard_dir = tmp_path / "out" / "shards"

    def refuse(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "addfile", refuse)
    with pytest.raises(UnwritableError):
        prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    assert not shard_dir.exists()
    with pytest.raises(FileNotFoundError):
        prepare_dataset(tmp_path / "missing", shard_dir, small_settings(), progress=False)
    assert not shard_dir.exists()


def test_stale_temporaries_are_removed_on_restart(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=2)
    shard_dir = tmp_path / "shards"
    prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    dead_pid = 10**9  # above any pid_max: no such process
    stale = [
        shard_dir / f".train-000000.tmp-{dead_pid}.tar",
        shard_dir / "parts" / f".train-000000.tmp-{dead_pid}.json",
    ]
    for path in stale:
        path.write_bytes(b"half a shard")
    prepare_dataset(raw, shard_dir, small_settings(), progress=False)
    assert not any(path.exists() for path in stale)


# ---------------------------------------------------------------- manifest and part records


def test_damaged_manifest_and_part_records(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    shutil.copytree(prepared / "raw", tmp / "raw")
    manifest_file = tmp / "shards" / "manifest.json"
    good = manifest_file.read_text()
    record = json.loads(good)["shards"][0]
    wrong = [
        {**json.loads(good), "image_size": "64"},
        {**json.loads(good), "shards": [{**record, "take_frames": "abc"}]},
        {**json.loads(good), "shards": [{**record, "file": "../../etc/passwd"}]},
        {**json.loads(good), "shards": [record, record]},
        {**json.loads(good), "shards": [{**record, "split": "bogus"}]},
    ]
    damages = ['{"schema_version": 1, "shards": [', '{"schema_version": 1}', "[1, 2]"]
    for damaged in damages + [json.dumps(w) for w in wrong]:
        manifest_file.write_text(damaged)
        with pytest.raises(DataError, match=f"{manifest_file} is damaged"):
            build_datamodule(tmp).setup("fit")
        with pytest.raises(DataError, match=f"{manifest_file} is damaged.*delete it"):
            build_datamodule(tmp).prepare_data()
    manifest_file.write_text(good)

    part = sorted((tmp / "shards" / "parts").glob("*.json"))[0]
    shard = tmp / "shards" / f"{part.stem}.tar"
    before = shard.stat().st_mtime_ns
    part.write_text('{"config_digest": ')
    datamodule = build_datamodule(tmp, **{"prepare.overwrite": False})
    manifest = datamodule.build_shards()  # resumes: rebuilds the shard of the damaged record
    assert json.loads(part.read_text())["shard"]["file"] == shard.name
    assert shard.stat().st_mtime_ns != before
    assert manifest["shards"] == json.loads(good)["shards"]


# ---------------------------------------------------------------- blank frames


def test_blank_frames_are_dropped_for_ground_truth_landmarks(tmp_path):
    raw = write_raw_dataset(tmp_path / "raw", subjects=2, takes=1, frames=3)
    take = raw / "s001" / "happiness" / "grey"
    write_take(take, 6)
    grey = np.full((96, 96, 3), 128, np.uint8)
    for number in (0, 3):  # the source frame and one inside the take
        cv2.imwrite(str(take / f"img_{number:04d}.jpg"), grey)
    blank_take = raw / "s001" / "happiness" / "all_grey"
    write_take(blank_take, 3)
    for path in blank_take.glob("img_*.jpg"):
        cv2.imwrite(str(path), grey)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = prepare_dataset(raw, tmp_path / "shards", small_settings(), progress=False)
    repairs = repairs_of(manifest, "s001/happiness/grey")
    assert any("frames 0, 3 blank" in note for note in repairs)
    assert "non-blank" in skipped_reason(manifest, "s001/happiness/all_grey")
    takes = read_all_takes(tmp_path / "shards", manifest)
    assert takes["s001__happiness__grey"].meta["source_frames"] == [1, 2, 2, 4, 5]


def test_take_stream_without_records_still_names_a_broken_shard(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    victim.write_bytes(victim.read_bytes()[: second_take_offset(victim) + 700])
    with pytest.raises(CorruptShard, match=f"Shard {victim} cannot be read after take 1"):
        list(take_stream([str(victim)]))


@pytest.mark.parametrize(
    "name",
    [
        "x.tar;touch${IFS}PWNED;echo",  # the hostile run's: a shell command in a `pipe:` source
        "x.tar$(touch PWNED)",
        "x.tar`touch PWNED`",
        "../train-000000.tar",
        ".hidden.tar",
        "-n.tar",
        "a b.tar",
    ],
)
def test_shard_names_that_are_not_plain_file_names_are_refused(
    prepared, tmp_path, monkeypatch, name
):
    tmp = copy_of(prepared, tmp_path / "copy")
    manifest_file = tmp / "shards" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    original = manifest["shards"][0]["file"]
    manifest["shards"][0]["file"] = name
    manifest_file.write_text(json.dumps(manifest))
    (tmp / "shards" / original).rename(tmp / "shards" / "renamed.tar")
    monkeypatch.chdir(tmp_path)  # where `touch PWNED` would write
    for shard_dir in (f"'pipe:cat {tmp}/shards/{{file}}'", str(tmp / "shards")):
        with pytest.raises(DataError, match=r"shards\[0\]\.file .* is not a plain file name"):
            read_split(build_datamodule(tmp, mode="stream", shard_dir=shard_dir), "train")
    assert not (tmp_path / "PWNED").exists()


def test_shard_names_are_shell_quoted_in_pipe_commands_only():
    from frgan.data.shards import shard_location

    assert (
        shard_location("pipe:cat /d/{file}", "train-000000.tar") == "pipe:cat /d/train-000000.tar"
    )
    # a name the manifest check would refuse still reaches the shell as one word
    assert shard_location("pipe:cat /d/{file}", "x;touch PWNED") == "pipe:cat /d/'x;touch PWNED'"
    assert (
        shard_location("pipe:curl -s https://h/d", "a b.tar")
        == "pipe:curl -s https://h/d/'a b.tar'"
    )
    assert shard_location("https://h/d", "x.tar") == "https://h/d/x.tar"
    assert shard_location("/d", "x.tar") == "/d/x.tar"


def test_a_shard_linked_to_another_file_fails_its_checksum(prepared, tmp_path):
    tmp = copy_of(prepared, tmp_path)
    victim = train_shard(tmp)
    outside = tmp_path / "outside.tar"
    outside.write_bytes(b"not the shard")
    victim.unlink()
    victim.symlink_to(outside)
    with pytest.raises(CorruptShard, match=f"Shard {victim} fails its checksum"):
        read_split(build_datamodule(tmp, mode="memory"), "train")
