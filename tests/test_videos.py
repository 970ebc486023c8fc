"""data=videos: video files and frame folders of the synthetic faces -> shards that train.

The videos are written here from synthetic takes (no downloads); MediaPipe finds the faces,
so the end-to-end tests skip where it is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import hydra
import imageio.v3 as iio
import numpy as np
import pytest
from conftest import TINY_RUN, compose_config

from frgan.data.prepare.videos import colour_histogram, is_cut, resample, runs, stretches
from frgan.data.shards import load_manifest, take_stream
from frgan.data.video_layout import scan_video_layout
from frgan.errors import ConfigError
from frgan.synthetic import render_take
from frgan.utils.cli import report_user_errors
from frgan.utils.media import write_mp4

REPO = Path(__file__).resolve().parents[1]
FPS = 25
VIDEO_OPTIONS = [
    "data.prepare.videos.label_level=1",
    "data.prepare.videos.take_frames=32",
    "data.prepare.videos.min_take_frames=6",
    "data.prepare.progress=false",
    "data.batch_size=4",
    "data.num_workers=0",
]
# frames each source gives at 25 fps (all of them end in a take or in a rejection)
EXPECTED_FRAMES = {
    "s01/happiness/clip.mp4": 24,  # 28 frames at 30 fps (0.933 s) -> output frames 0..23 at 25 fps
    "s02/surprise/clip.avi": 30,  # 14 frames at 12 fps (1.167 s), repeated -> 0..29
    "s03/anger/session1/take1": 14,  # a folder of 14 frames at frame_folder_fps=25
    "s04/cut.mp4": 28,  # subject 3 then subject 4, 14 frames each
    "s05/noface.mp4": 28,  # 10 face, 8 without, 10 face
    "s05/two.mp4": 8,  # two faces side by side
    "s05/small.mp4": 8,  # a face 24 px high
    "s03/one.mp4": 1,
    "s02/broken.mp4": 0,  # not a video
}


def faces(subject: int, frames: int = 14, size: int = 128) -> np.ndarray:
    return render_take(
        0, subject, "happiness", 0, image_size=size, min_frames=frames, max_frames=frames
    ).images


def write_video_folder(root: Path) -> Path:
    """Videos in several formats, rates and sizes, nested, with every kind of bad stretch."""
    for folder in ("s01/happiness", "s02/surprise", "s03/anger/session1/take1", "s04", "s05"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    first = faces(0)
    write_mp4(root / "s01/happiness/clip.mp4", np.concatenate([first, first[::-1]]), fps=30)
    iio.imwrite(
        root / "s02/surprise/clip.avi", faces(1, size=96), plugin="pyav", codec="mpeg4", fps=12
    )
    for number, frame in enumerate(faces(2)):
        cv2.imwrite(str(root / f"s03/anger/session1/take1/img_{number:04d}.jpg"), frame[..., ::-1])
    write_mp4(root / "s04/cut.mp4", np.concatenate([faces(3), faces(4)]), fps=FPS)
    fifth = faces(5, frames=20)
    gradient = np.broadcast_to(
        np.linspace(0, 255, 128, dtype=np.uint8)[None, None, :, None], (8, 128, 128, 3)
    )
    write_mp4(root / "s05/noface.mp4", np.concatenate([fifth[:10], gradient, fifth[10:]]), fps=FPS)
    write_mp4(root / "s05/two.mp4", np.concatenate([fifth[:8], faces(0)[:8]], axis=2), fps=FPS)
    small = [
        np.pad(
            cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA),
            ((40, 40), (40, 40), (0, 0)),
            mode="edge",
        )
        for f in fifth[:8]
    ]
    write_mp4(root / "s05/small.mp4", np.stack(small), fps=FPS)
    write_mp4(root / "s03/one.mp4", first[:1], fps=FPS)
    (root / "s02/broken.mp4").write_text("this is not a video")
    (root / "notes.txt").write_text("not a video either")
    return root


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    return write_video_folder(tmp_path_factory.mktemp("videos") / "raw")


def videos_config(raw: Path, shard_dir: Path, *overrides: str):
    return compose_config(
        "prepare.yaml",
        [
            "data=videos",
            f"data.raw_dir={raw}",
            f"data.shard_dir={shard_dir}",
            *VIDEO_OPTIONS,
            *overrides,
        ],
    )


def prepare(raw: Path, shard_dir: Path, *overrides: str) -> dict:
    return hydra.utils.instantiate(videos_config(raw, shard_dir, *overrides).data).build_shards()


def prepared_takes(shard_dir: Path, manifest: dict) -> list:
    return list(take_stream([str(shard_dir / r["file"]) for r in manifest["shards"]]))


def accounted_frames(shard_dir: Path, manifest: dict) -> dict[str, int]:
    """Per source: frames in its takes plus frames in its rejected stretches."""
    counts = dict.fromkeys(EXPECTED_FRAMES, 0)
    for take in prepared_takes(shard_dir, manifest):
        counts[take.meta["source"]] += len(take.frames)
    for skip in manifest["skipped"]:
        counts[skip["take"].split("@")[0]] += skip["frames"]
    return counts


def reasons_of(manifest: dict, source: str) -> list[tuple[str, int]]:
    return [
        (s["reason"].split(" (")[0], s["frames"])
        for s in manifest["skipped"]
        if s["take"].split("@")[0] == source
    ]


# ---------------------------------------------------------------- pure steps


def test_resample_drops_or_repeats_frames_to_the_target_rate():
    down = [number for number, _ in resample(iter(range(30)), 30, 25)]
    assert len(down) == 25 and down[:7] == [0, 1, 2, 3, 4, 6, 7]
    up = [number for number, _ in resample(iter(range(12)), 12, 25)]
    assert len(up) == 25 and up[:5] == [0, 0, 0, 1, 1]
    assert [n for n, _ in resample(iter(range(5)), 25, 25)] == list(range(5))


def test_shot_cut_between_two_subjects_and_windows():
    first, second = faces(0, frames=6), faces(1, frames=6)
    assert not is_cut(colour_histogram(first[0]), colour_histogram(first[1]), 0.4)
    assert is_cut(colour_histogram(first[-1]), colour_histogram(second[0]), 0.4)
    frames = list(enumerate(np.concatenate([first, second])))
    assert [len(s) for s in stretches(iter(frames), 4, 0.4)] == [4, 2, 4, 2]
    assert runs(["", "", "no face", "", ""]) == [(0, 2, ""), (2, 3, "no face"), (3, 5, "")]


def test_subject_and_label_from_path_levels_and_listing(tmp_path):
    raw = tmp_path / "raw"
    for path in (
        "alice/smile/a.mp4",
        "bob/b.avi",
        "carol/frames/img_1.png",
        "carol/frames/img_10.png",
        "carol/frames/img_2.png",
    ):
        (raw / path).parent.mkdir(parents=True, exist_ok=True)
        (raw / path).write_bytes(b"")
    layout = scan_video_layout(raw, subject_level=0, label_level=1)
    found = {s.relative: (s.subject, s.expression) for s in layout.takes}
    assert found == {
        "alice/smile/a.mp4": ("alice", "smile"),
        "bob/b.avi": ("bob", "b"),
        "carol/frames": ("carol", "frames"),
    }
    folder = next(s for s in layout.takes if s.frame_paths)
    assert [p.name for p in folder.frame_paths] == ["img_1.png", "img_2.png", "img_10.png"]
    # -1 is the file name: a level beyond the path is reported, never dropped quietly
    layout = scan_video_layout(raw, subject_level=-1, label_level=2)
    assert [s.relative for s in layout.takes] == ["alice/smile/a.mp4"]
    assert {i.path for i in layout.ignored} == {"bob/b.avi", "carol/frames"}

    (raw / "list.csv").write_text(
        "path,subject,label,split\nalice/smile/a.mp4,A,,train\nbob/b.avi,B,talk,test\nmissing.mp4,C,,val\n"
    )
    layout = scan_video_layout(raw, listing="list.csv")
    assert {(s.subject, s.expression) for s in layout.takes} == {("A", "unlabelled"), ("B", "talk")}
    assert layout.listed_split == {"A": "train", "B": "test", "C": "val"}
    assert [u.label for u in layout.unreadable_takes] == ["missing.mp4"]
    assert [i.path for i in layout.ignored] == ["carol/frames"]  # not in the listing

    (raw / "bad.json").write_text(
        json.dumps(
            [
                {"path": "bob/b.avi", "subject": "B", "split": "train"},
                {"path": "alice/smile/a.mp4", "subject": "B", "split": "val"},
            ]
        )
    )
    with pytest.raises(ConfigError, match="subject 'B' is listed in the train and the val split"):
        scan_video_layout(raw, listing="bad.json")
    (raw / "bad.json").write_text(json.dumps([{"path": "bob/b.avi"}]))
    with pytest.raises(ConfigError, match="lacks a path or a subject"):
        scan_video_layout(raw, listing="bad.json")


# ---------------------------------------------------------------- end to end


def test_ground_truth_beside_a_synthetic_video(tmp_path):
    """landmarks=ground_truth reads clip.ground_truth.npz (row k = source frame k); no detector."""
    take = render_take(0, 0, "happiness", 0, image_size=128, min_frames=12, max_frames=12)
    (tmp_path / "raw" / "s01").mkdir(parents=True)
    write_mp4(tmp_path / "raw/s01/clip.mp4", take.images, fps=50)  # every other frame at 25 fps
    landmarks = take.landmarks.copy()
    landmarks[8:] = np.nan  # the face lost from source frame 8 on
    np.savez(tmp_path / "raw/s01/clip.ground_truth.npz", landmarks=landmarks)
    shard_dir = tmp_path / "shards"
    manifest = prepare(
        tmp_path / "raw",
        shard_dir,
        "data.prepare.landmarks=ground_truth",
        "data.prepare.landmark_smoothing=none",
        "data.prepare.videos.min_take_frames=2",
        "data.prepare.split_fractions={train: 1.0, val: 0.0, test: 0.0}",
        "data.prepare.workers=0",
    )
    (only,) = prepared_takes(shard_dir, manifest)
    assert only.meta["source_frames"] == [0, 2, 4, 6]
    assert [(s["take"], s["reason"], s["frames"]) for s in manifest["skipped"]] == [
        ("s01/clip.mp4@4-5", "no face", 2)
    ]


def test_videos_prepare_into_shards_with_every_rejection_reported(video_folder, tmp_path):
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    shard_dir = tmp_path / "shards"
    manifest = prepare(
        video_folder, shard_dir, "data.prepare.workers=2", "data.prepare.takes_per_shard=2"
    )

    assert accounted_frames(shard_dir, manifest) == EXPECTED_FRAMES, (
        "every frame is in a take or a rejection"
    )
    takes = {t.meta["take"]: t for t in prepared_takes(shard_dir, manifest)}
    assert sorted(takes) == [
        "s01/happiness/clip.mp4@0-23",
        "s02/surprise/clip.avi@0-29",
        "s03/anger/session1/take1@0-13",
        "s04/cut.mp4@0-13",  # the cut between the two subjects ends the first take
        "s04/cut.mp4@14-27",
        "s05/noface.mp4@0-9",
        "s05/noface.mp4@18-27",
    ]
    first = takes["s01/happiness/clip.mp4@0-23"]
    assert first.frames.shape == (24, 64, 64, 3) and first.landmarks.shape == (24, 68, 3)
    assert (first.meta["subject"], first.meta["expression"], first.meta["fps"]) == (
        "s01",
        "happiness",
        25,
    )
    assert reasons_of(manifest, "s05/noface.mp4") == [("no face", 8)]
    assert reasons_of(manifest, "s05/two.mp4") == [("several faces", 8)]
    assert reasons_of(manifest, "s05/small.mp4") == [("face too small", 8)]
    assert reasons_of(manifest, "s03/one.mp4") == [("too short", 1)]
    assert reasons_of(manifest, "s02/broken.mp4") == [("unreadable file", 0)]
    assert [i["path"] for i in manifest["ignored"]] == ["notes.txt"]
    split = manifest["split"]
    assert sorted(sum(split.values(), [])) == ["s01", "s02", "s03", "s04", "s05"]
    assert len({s for names in split.values() for s in names}) == 5, "subject-disjoint"
    sheets = sorted(p.name for p in (shard_dir / "contact_sheets").iterdir())
    assert sheets == ["s01.png", "s02.png", "s03.png", "s04.png", "s05.png"]
    sheet = cv2.imread(str(shard_dir / "contact_sheets" / "s04.png"))
    assert sheet.shape == (2 * (16 + 64), 6 * 64, 3)  # two takes, six frames each


def listing_for(raw: Path) -> Path:
    rows = [
        ("s01/happiness/clip.mp4", "s01", "happiness", "train"),
        ("s02/surprise/clip.avi", "s02", "surprise", "train"),
        ("s03/anger/session1/take1", "s03", "anger", "train"),
        ("s04/cut.mp4", "s04", "", "val"),
        ("s05/noface.mp4", "s05", "", "test"),
    ]
    listing = raw.parent / "listing.csv"
    listing.write_text("path,subject,label,split\n" + "".join(",".join(r) + "\n" for r in rows))
    return listing


def test_shards_from_a_listing_train(video_folder, tmp_path):
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    from frgan.train import train

    shard_dir = tmp_path / "shards"
    listing = [
        f"data.prepare.videos.listing={listing_for(video_folder)}",
        "data.prepare.split_method=listing",
    ]
    manifest = prepare(video_folder, shard_dir, *listing, "data.prepare.workers=0")
    assert manifest["split"] == {"train": ["s01", "s02", "s03"], "val": ["s04"], "test": ["s05"]}
    assert {i["reason"].split(" ")[0] for i in manifest["ignored"]} == {
        "not"
    }  # unlisted + notes.txt
    assert len(manifest["ignored"]) == 5

    cfg = compose_config(
        "train.yaml",
        [
            "data=videos",
            f"data.raw_dir={video_folder}",
            f"data.shard_dir={shard_dir}",
            *VIDEO_OPTIONS,
            *listing,
            *TINY_RUN,
            "trainer.limit_train_batches=2",
        ],
        run_dir=tmp_path / "run",
    )
    train(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_bad_video_input_is_one_line_and_exit_2(tmp_path, capsys):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "frgan.prepare",
            "data=videos",
            f"data.raw_dir={tmp_path / 'nowhere'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not exist" in errors[0] and "Traceback" not in result.stderr

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("no videos here")
    for overrides, expected in (
        (["data.prepare.videos.min_take_frames=1"], "min_take_frames"),
        (["data.prepare.videos.listing=none.csv"], "listing"),
        (["+data.prepare.videos.frames=3"], "Unknown key in data.prepare.videos"),
        ([], "No video files or frame folders found"),
    ):
        task = report_user_errors(
            lambda o=overrides: prepare(tmp_path / "raw", tmp_path / "shards", *o)
        )
        with pytest.raises(SystemExit) as exit_info:
            task()
        assert exit_info.value.code == 2
        errors = [
            line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")
        ]
        assert len(errors) == 1 and expected in errors[0], errors


@pytest.mark.slow
def test_a_killed_preparation_resumes(video_folder, tmp_path):
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    shard_dir = tmp_path / "shards"
    command = [
        sys.executable, "-m", "frgan.prepare", "data=videos", f"data.raw_dir={video_folder}",
        f"data.shard_dir={shard_dir}", *VIDEO_OPTIONS, "data.prepare.takes_per_shard=1", "data.prepare.workers=0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    parts = shard_dir / "parts"
    deadline = time.monotonic() + 300
    while (
        not (parts.is_dir() and len(list(parts.glob("*.json"))) >= 2)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (shard_dir / "manifest.json").exists(), "killed before the end"
    finished = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    assert finished

    manifest = prepare(
        video_folder, shard_dir, "data.prepare.takes_per_shard=1", "data.prepare.workers=0"
    )
    assert {name: (parts / name).stat().st_mtime_ns for name in finished} == finished, (
        "finished shards kept"
    )
    assert accounted_frames(shard_dir, manifest) == EXPECTED_FRAMES
    assert load_manifest(shard_dir) == manifest
