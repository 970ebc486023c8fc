"""python -m frgan.generate: a tiny model trained here drives a synthetic face, a frame folder,
an MP4 and the astronaut photo; every user mistake is one line and exit status 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, compose_config
from omegaconf import OmegaConf

from frgan.generate import main
from frgan.inference.frames import natural_key, read_driver
from frgan.utils.checkpoint_io import add_digest
from frgan.utils.media import write_image, write_mp4

REPO = Path(__file__).resolve().parents[1]
SIZE = 64  # the tiny synthetic set's image size
COLUMNS = 5


@pytest.fixture(scope="module")
def trained_run(tiny_data_dir, tmp_path_factory) -> Path:
    """A frgan.train run folder of a tiny model fitted for one step: checkpoints/last.ckpt and
    the .hydra/config.yaml Hydra writes beside it."""
    from frgan.train import train

    run = tmp_path_factory.mktemp("trained")
    one_step = ["trainer.limit_train_batches=1", "trainer.limit_val_batches=0", "test=false"]
    quiet = ["logger=none", "callbacks=none"]
    overrides = [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, *one_step, *quiet]
    cfg = compose_config("train.yaml", overrides, run_dir=run)
    _, objects = train(cfg)
    objects["trainer"].save_checkpoint(run / "checkpoints" / "last.ckpt")
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


@pytest.fixture(scope="module")
def takes(tiny_data_dir) -> dict[str, Path]:
    """One take folder per synthetic subject."""
    raw = tiny_data_dir / "synthetic" / "raw"
    return {s.name: sorted(p for p in s.glob("*/take*") if p.is_dir())[0] for s in raw.glob("s*")}


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    from skimage.data import astronaut

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    write_image(path, astronaut())
    return path


def run_generate(capsys, out: Path, *args: str) -> tuple[int, str, str]:
    """The command's task (what `python -m frgan.generate <args>` runs) on the composed config:
    (exit status, stdout, stderr)."""
    cfg = compose_config("generate.yaml", ["progress=false", *args], run_dir=out)
    status = 0
    try:
        main(cfg)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read_video(path: Path) -> np.ndarray:
    return iio.imread(path, plugin="pyav", index=None)


def test_a_synthetic_take_drives_another_subjects_face(trained_run, takes, capsys, tmp_path):
    (source_subject, source_take), (_, driver_take) = list(takes.items())[:2]
    source = source_take / "img_0000.jpg"
    status, out, err = run_generate(
        capsys, tmp_path, f"ckpt={trained_run}", f"source={source}",
        f"driver={driver_take}", "save_frames=true",
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((tmp_path / "generate.json").read_text())
    frames = len(list(driver_take.glob("img_*.jpg")))
    assert record["frames"] == frames
    assert record["source_landmarks"] == record["driver_landmarks"] == "ground_truth"
    assert record["structure"] == "normal" and record["generated_clip"] == "forecast"
    assert "synthetic faces" not in out, "no real-photo note for a synthetic source"
    assert str(tmp_path / "animation.mp4") in out

    video = read_video(tmp_path / "animation.mp4")
    assert video.shape == (frames, SIZE, COLUMNS * SIZE, 3)
    gif = iio.imread(tmp_path / "animation.gif", index=None)
    assert len(gif) == frames and gif.shape[1:3] == (SIZE, COLUMNS * SIZE)
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(pngs) == frames
    grid = np.stack([iio.imread(p) for p in pngs]).astype(int)
    column = [grid[..., i * SIZE : (i + 1) * SIZE, :] for i in range(COLUMNS)]
    assert np.abs(column[0] - column[0][:1]).max() == 0, "the source column is one still image"
    assert np.abs(column[1] - column[1][:1]).max() > 0, "the driver moves"
    # structure maps: background exactly 0, i.e. grey 128 (127.5 rounds to 128)
    assert (column[2][:, 0, 0] == 128).all() and (column[3][:, 0, 0] == 128).all()
    # the retargeted structure is the source's face, not the driver's
    assert np.abs(column[3] - column[2]).mean() > 1
    assert np.abs(column[4] - column[4][:1]).max() > 0, "the generated face moves"


def test_the_generated_column_is_the_models_clip_of_the_retargeted_maps(trained_run, takes):
    from frgan.data.datasets import to_image_tensor
    from frgan.data.structure import StructureRenderer
    from frgan.inference.animate import generate_clip, structure_maps
    from frgan.inference.faces import driver_take, source_face
    from frgan.inference.frames import read_image
    from frgan.inference.model import load_trained_model

    (_, source_take), (_, driving) = list(takes.items())[:2]
    trained = load_trained_model(trained_run)
    source = source_take / "img_0000.jpg"
    face = source_face(read_image(source), source, SIZE)
    driver = driver_take(read_driver(driving), SIZE, str(driving))
    maps = structure_maps(face, driver, StructureRenderer(trained.structure, SIZE))
    x0 = to_image_tensor(face.image)[None]
    clip, name = generate_clip(trained.model, x0, maps["s0"], maps["retargeted"], chunk=2)
    whole = trained.model.animate(x0, maps["s0"], maps["retargeted"][None])["forecast"][0]
    assert name == "forecast" and torch.allclose(clip, whole, atol=1e-5), "chunks change nothing"
    # the source's own first frame is the retargeted frame 0: the expression starts neutral
    assert torch.equal(maps["retargeted"][0], maps["s0"][0])


def _moving_photo_frames(photo: Path, count: int = 4) -> np.ndarray:
    """`count` frames of the photo, shifted a little each (a face that moves), 256 px."""
    from PIL import Image

    image = Image.open(photo).convert("RGB").resize((256, 256))
    return np.stack([np.roll(np.asarray(image), 3 * k, axis=1) for k in range(count)])


def test_a_frame_folder_and_an_mp4_drive_the_astronaut_with_mediapipe(
    trained_run, astronaut, capsys, tmp_path
):
    frames = _moving_photo_frames(astronaut)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(frames):
        write_image(folder / f"f{k * 5}.png", frame)  # f0, f5, f10, f15: natural order
    mp4 = write_mp4(tmp_path / "driver.mp4", frames, fps=12)
    for name, driver in (("folder", folder), ("mp4", mp4)):
        out = tmp_path / name
        status, stdout, err = run_generate(
            capsys, out, f"ckpt={trained_run}", f"source={astronaut}",
            f"driver={driver}", "landmarks=mediapipe",
        )  # fmt: skip
        assert status == 0, err
        record = json.loads((out / "generate.json").read_text())
        assert record["source_landmarks"] == record["driver_landmarks"] == "mediapipe"
        assert record["frames"] == len(frames)
        assert "trained on the synthetic faces" in stdout, "a real photo gets the honest note"
        assert read_video(out / "animation.mp4").shape == (len(frames), SIZE, COLUMNS * SIZE, 3)
    assert record["fps"] == 12, "an MP4 driver keeps its frame rate"


def test_the_astronaut_driven_by_a_synthetic_take(trained_run, takes, astronaut, capsys, tmp_path):
    driver = list(takes.values())[0]
    status, out, err = run_generate(
        capsys, tmp_path / "hydra", f"ckpt={trained_run}", f"source={astronaut}",
        f"driver={driver}", f"out={tmp_path / 'out'}",
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((tmp_path / "out" / "generate.json").read_text())
    assert record["driver_landmarks"] == "ground_truth"
    assert record["source_landmarks"] in ("mediapipe", "face_alignment")
    assert (tmp_path / "out" / "animation.gif").stat().st_size > 0
    assert not (tmp_path / "hydra" / "animation.gif").exists(), "out= decides where"
    assert "trained on the synthetic faces" in out
    assert err == "", "nothing but the results: no MediaPipe start-up noise"


def _command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "frgan.generate", "progress=false", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_command_reports_a_missing_checkpoint_in_one_line(takes, tmp_path):
    take = list(takes.values())[0]
    result = _command(
        f"ckpt={tmp_path / 'missing'}", f"source={take / 'img_0000.jpg'}", f"driver={take}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: checkpoint {tmp_path / 'missing'} does not exist; give a .ckpt file or a run "
        "folder (outputs/<task>/runs/<date>_<time>)"
    ]


@pytest.mark.slow
def test_the_command_animates_the_astronaut_end_to_end(trained_run, takes, astronaut, tmp_path):
    result = _command(
        f"ckpt={trained_run}", f"source={astronaut}", f"driver={list(takes.values())[1]}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {tmp_path / 'run' / 'animation.mp4'}" in result.stdout
    assert "Traceback" not in result.stderr and "AttributeError" not in result.stderr


def test_frame_folders_are_read_in_natural_order(tmp_path):
    names = ["img10.png", "img2.png", "img1.png"]
    for value, name in enumerate(names):
        write_image(tmp_path / name, np.full((8, 8, 3), value * 50, np.uint8))
    driver = read_driver(tmp_path)
    assert driver.frame_ids == [1, 2, 10]
    assert [int(f[0, 0, 0]) for f in driver.frames] == [100, 50, 0]
    assert sorted(names, key=natural_key) == ["img1.png", "img2.png", "img10.png"]


def _checkpoint_with_wrong_weights(trained_run: Path, path: Path) -> Path:
    checkpoint = torch.load(
        sorted((trained_run / "checkpoints").glob("*.ckpt"))[0], map_location="cpu",
        weights_only=False,
    )  # fmt: skip
    name = next(k for k in checkpoint["state_dict"] if k.endswith("weight"))
    checkpoint["state_dict"][name] = torch.zeros(3, 3)
    add_digest(checkpoint)  # a whole file whose weights do not fit its model, not a damaged one
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no face in the source", "no face found in the source image"),
        ("unreadable video", "cannot be read"),
        ("empty video", "cannot be read"),
        ("empty folder", "holds no image files"),
        ("missing checkpoint", "does not exist"),
        ("not a checkpoint", "not a readable PyTorch Lightning checkpoint"),
        ("another kind of checkpoint", "is not a FRGAN model checkpoint"),
        ("weights of another size", "weights do not fit"),
        ("frames of different sizes", "must all have one size"),
        ("no structure record", "set structure="),
        ("missing argument", "driver= is required"),
        ("unknown structure kind", "structure='wavy' is unknown"),
    ],
)
def test_user_mistakes_are_one_line_and_status_2(
    case, expected, trained_run, takes, capsys, tmp_path
):
    (_, source_take), (_, driver) = list(takes.items())[:2]
    source, ckpt = source_take / "img_0000.jpg", trained_run
    if case == "no face in the source":
        source = write_image(tmp_path / "wall.png", np.full((96, 96, 3), 200, np.uint8))
    elif case == "unreadable video":
        driver = tmp_path / "broken.mp4"
        driver.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    elif case == "empty video":
        driver = tmp_path / "empty.mp4"
        driver.touch()
    elif case == "empty folder":
        driver = tmp_path / "nothing"
        driver.mkdir()
    elif case == "missing checkpoint":
        ckpt = tmp_path / "no.ckpt"
    elif case == "not a checkpoint":
        ckpt = tmp_path / "notes.ckpt"
        ckpt.write_text("hello")
    elif case == "another kind of checkpoint":
        ckpt = tmp_path / "other.ckpt"
        torch.save({"state_dict": {}, "epoch": 3}, ckpt)
    elif case == "weights of another size":
        ckpt = _checkpoint_with_wrong_weights(trained_run, tmp_path / "edited.ckpt")
    elif case == "frames of different sizes":
        shutil.copytree(driver, tmp_path / "take")
        driver = tmp_path / "take"
        write_image(driver / "img_0001.jpg", np.zeros((32, 48, 3), np.uint8))
    elif case == "no structure record":  # a checkpoint file taken out of its run folder
        ckpt = tmp_path / "alone.ckpt"
        shutil.copy(sorted((trained_run / "checkpoints").glob("*.ckpt"))[0], ckpt)
    args = [f"ckpt={ckpt}", f"source={source}", f"driver={driver}"]
    if case == "missing argument":
        args = args[:2]
    if case == "unknown structure kind":
        args.append("structure=wavy")
    status, out, err = run_generate(capsys, tmp_path / "out", *args)
    assert status == 2, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "out" / "animation.mp4").exists()
