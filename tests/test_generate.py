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
    assert record["structure"] == "normal_parts" and record["generated_clip"] == "forecast"
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
    clip, name = generate_clip(trained.model, x0, maps, chunk=2)
    points = maps["l0"], maps["landmarks"][None]
    whole = trained.model.animate(x0, maps["s0"], maps["retargeted"][None], *points)["forecast"][0]
    assert name == "forecast" and torch.allclose(clip, whole, atol=1e-5), "chunks change nothing"
    # the source's own first frame is the retargeted frame 0: the expression starts neutral
    assert torch.equal(maps["retargeted"][0], maps["s0"][0])
    # the maps' landmarks, which the default's landmark-warping forecaster moves the source by
    assert trained.model.generator.landmark_warp
    assert maps["l0"].shape == (1, 68, 2) and maps["landmarks"].shape == (len(clip), 68, 2)
    torch.testing.assert_close(maps["landmarks"][0], maps["l0"][0])


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
        f"hydra.run.dir={tmp_path / 'run'}", "motion=expression+pose", "paste_back=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {tmp_path / 'run' / 'animation.mp4'}" in result.stdout
    assert f"Wrote {tmp_path / 'run' / 'photo.mp4'}" in result.stdout
    assert iio.imread(tmp_path / "run" / "photo.gif", index=0).shape[:2] == (512, 512)
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
        weights_only=True,
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
        ("source is a folder", "is a folder, not an image file"),
        (
            "unknown motion",
            "motion='sideways' is invalid; valid values: expression, expression+pose",
        ),
        ("feather out of range", "paste_feather must be in [0, 0.5]"),
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
    if case == "source is a folder":
        args[1] = f"source={source_take}"
    if case == "unknown motion":
        args.append("motion=sideways")
    if case == "feather out of range":
        args += ["paste_back=true", "paste_feather=0.8"]
    status, out, err = run_generate(capsys, tmp_path / "out", *args)
    assert status == 2, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "out" / "animation.mp4").exists()


# ---------------------------------------------------------------- motion=expression+pose


def _pose_only_take(folder: Path, yaw: np.ndarray, shift: np.ndarray) -> Path:
    """A synthetic take whose face keeps a neutral expression while its head turns by `yaw`
    [T] radians and moves by `shift` [T, 2] pixels: frames img_NNNN.jpg and ground_truth.npz."""
    from frgan.synthetic.appearance import background_image, sample_take_lighting
    from frgan.synthetic.compose import project, render_frames
    from frgan.synthetic.expressions import ACTION_UNITS, articulate
    from frgan.synthetic.take_video import head_and_basis, make_subject

    head, basis = head_and_basis()
    person = make_subject(123, 0)
    frames = len(yaw)
    pose = np.zeros((frames, 6))
    pose[:, 0], pose[:, 3:5], pose[:, 5] = yaw, shift, 0.3 * SIZE
    lighting = sample_take_lighting(np.random.default_rng(0))
    posed = project(
        articulate(head, person.rest, basis, np.zeros((frames, len(ACTION_UNITS)))), pose, SIZE
    )
    images = render_frames(
        head, posed, person.texture, person.texture_labels, person.appearance, lighting,
        background_image(lighting, SIZE), np.zeros((frames, 2)),
    )  # fmt: skip
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        write_image(folder / f"img_{index:04d}.jpg", image)
    np.savez(folder / "ground_truth.npz", landmarks=posed[:, head.landmark_ids].astype(np.float32))
    return folder


def _rotation_angle(rotation: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("movement", ["turn", "shift"])
def test_head_motion_is_carried_relatively_only_with_expression_plus_pose(
    movement, takes, tmp_path
):
    from frgan.data.retarget import apply_similarity, similarity_transform
    from frgan.inference.animate import drive
    from frgan.inference.faces import driver_take, source_face
    from frgan.inference.frames import read_image

    steps = np.linspace(0, 1, 5)
    yaw = 0.35 * steps if movement == "turn" else np.zeros(5)
    shift = np.outer(steps, [6.0, -4.0]) if movement == "shift" else np.zeros((5, 2))
    folder = _pose_only_take(tmp_path / "take", yaw, shift)
    driver = driver_take(read_driver(folder), SIZE, str(folder))
    assert driver.landmark_source == "ground_truth"
    source_path = list(takes.values())[1] / "img_0000.jpg"
    face = source_face(read_image(source_path), source_path, SIZE)

    still = drive(face, driver, "expression")
    assert np.abs(still - face.landmarks).max() < 1e-3, "expression only: the head stays still"

    moved = drive(face, driver, "expression+pose")
    assert np.abs(moved[0] - face.landmarks).max() < 1e-3, "relative: frame 0 is the source"
    displacements = []
    for t in range(1, 5):
        # the source moves rigidly (no expression appears) by the driver's relative motion
        scale, rotation, translation = similarity_transform(moved[0], moved[t])
        rigid = apply_similarity(moved[0], scale, rotation, translation)
        assert np.abs(rigid - moved[t]).max() < 1e-2
        driver_scale, driver_rotation, _ = similarity_transform(
            driver.landmarks[0], driver.landmarks[t]
        )
        assert scale == pytest.approx(driver_scale, abs=1e-3)
        assert _rotation_angle(rotation) == pytest.approx(
            _rotation_angle(driver_rotation), abs=1e-3
        )
        if movement == "turn":
            assert _rotation_angle(rotation) == pytest.approx(yaw[t], abs=0.02)
        displacements.append(
            (moved[t, :, :2] - moved[0, :, :2]).mean(0)
            - (driver.landmarks[t, :, :2] - driver.landmarks[0, :, :2]).mean(0)
        )
    if movement == "shift":
        # both faces fill their crops alike, so in crop pixels they move about equally far
        driver_step = (driver.landmarks[-1, :, :2] - driver.landmarks[0, :, :2]).mean(0)
        source_step = (moved[-1, :, :2] - moved[0, :, :2]).mean(0)
        assert np.linalg.norm(driver_step) > 5
        assert np.linalg.norm(source_step - driver_step) < 0.15 * np.linalg.norm(driver_step)


def test_the_structure_column_follows_the_head_only_with_expression_plus_pose(
    trained_run, takes, capsys, tmp_path
):
    steps = np.linspace(0, 1, 5)
    driver = _pose_only_take(tmp_path / "take", 0.3 * steps, np.outer(steps, [5.0, 3.0]))
    source = list(takes.values())[0] / "img_0000.jpg"
    columns = {}
    for motion in ("expression", "expression+pose"):
        out = tmp_path / motion
        status, _, err = run_generate(
            capsys, out, f"ckpt={trained_run}", f"source={source}", f"driver={driver}",
            f"motion={motion}", "save_frames=true",
        )  # fmt: skip
        assert status == 0, err
        assert json.loads((out / "generate.json").read_text())["motion"] == motion
        grid = np.stack([iio.imread(p) for p in sorted((out / "frames").glob("frame_*.png"))])
        columns[motion] = grid[..., 3 * SIZE : 4 * SIZE, :].astype(int)
    still, moving = columns["expression"], columns["expression+pose"]
    assert np.abs(still - still[:1]).max() == 0, "a head that only moves changes no expression"
    assert np.array_equal(moving[0], still[0]), "both start from the source's own structure"
    assert np.abs(moving[-1] - moving[0]).mean() > 2, "with the pose, the structure moves"


# ---------------------------------------------------------------- paste_back


def test_the_feather_mask_is_one_inside_and_falls_smoothly_to_zero_at_the_edges():
    from frgan.inference.paste import feather_mask

    mask = feather_mask(100, 0.1)
    assert mask.shape == (100, 100) and mask.dtype == np.float32
    assert (mask[10:90, 10:90] == 1).all()
    assert mask[0, 50] < 0.01 and mask[50, 0] < 0.01 and mask[0, 0] < 1e-4
    row = mask[50, :50]
    assert (np.diff(row) >= 0).all() and np.diff(row).max() < 0.2
    assert (feather_mask(7, 0.0) == 1).all()
    with pytest.raises(ValueError, match="feather must be"):
        feather_mask(10, 0.6)


def test_paste_back_leaves_the_photo_outside_the_box_and_blends_the_border():
    from frgan.data.crop import pixel_box
    from frgan.inference.paste import paste_back

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 100, (90, 120, 3), dtype=np.uint8)
    crops = np.full((2, 16, 16, 3), 255, np.uint8)
    box = np.array([60.0, 45.0, 40.0])  # centre (60, 45), side 40: columns 40..79, rows 25..64
    frames = paste_back(photo, crops, box, feather=0.2)
    assert frames.shape == (2, 90, 120, 3) and frames.dtype == np.uint8
    left, top, side = pixel_box(box)
    outside = np.ones((90, 120), bool)
    outside[top : top + side, left : left + side] = False
    assert np.array_equal(
        frames[:, outside], np.broadcast_to(photo[outside], (2, *photo[outside].shape))
    )
    border = int(np.ceil(0.2 * side))
    assert (
        frames[:, top + border : top + side - border, left + border : left + side - border] == 255
    ).all()
    # the seam, on a flat photo: from the photo to the face across the border, never a jump
    flat = paste_back(np.full_like(photo, 50), crops, box, feather=0.2)
    row = flat[0, 45, left : left + side // 2, 0].astype(int)
    assert row[0] < 60 and row[-1] == 255 and (np.diff(row) >= 0).all()
    assert np.diff(row).max() < 0.25 * (255 - 50), "a hard paste would jump by 205 at once"
    assert len(np.unique(row[:border])) == border, "a new value at every pixel of the border"
    # a box partly outside the photo (a face at its edge) pastes the part inside
    edge = paste_back(photo, crops, np.array([5.0, 5.0, 30.0]), feather=0.1)
    assert edge[0, 2, 2, 0] == 255 and np.array_equal(edge[0, 50:, 50:], photo[50:, 50:])


def _moving_astronaut_mp4(astronaut: Path, path: Path, count: int) -> Path:
    return write_mp4(path, _moving_photo_frames(astronaut, count), fps=12)


def test_paste_back_with_head_motion_animates_the_whole_photo_in_chunks(
    trained_run, astronaut, capsys, tmp_path
):
    import cv2

    frames = 12  # longer than the tiny data's clips: generated `chunk` frames at a time
    driver = _moving_astronaut_mp4(astronaut, tmp_path / "driver.mp4", frames)
    photo = iio.imread(astronaut)
    outputs = {}
    for chunk in (5, 64):
        out = tmp_path / f"chunk{chunk}"
        status, stdout, err = run_generate(
            capsys, out, f"ckpt={trained_run}", f"source={astronaut}", f"driver={driver}",
            "landmarks=mediapipe", "motion=expression+pose", "paste_back=true",
            "save_frames=true", f"chunk={chunk}",
        )  # fmt: skip
        assert status == 0, err
        record = json.loads((out / "generate.json").read_text())
        assert record["frames"] == frames and record["paste_back"] is True
        assert record["source_size"] == [photo.shape[1], photo.shape[0]]
        assert f"Wrote {out / 'photo.mp4'}" in stdout
        video = read_video(out / "photo.mp4")
        assert video.shape == (frames, *photo.shape)
        assert len(iio.imread(out / "photo.gif", index=None)) == frames
        pasted = np.stack([iio.imread(p) for p in sorted((out / "frames").glob("photo_*.png"))])
        grid = np.stack([iio.imread(p) for p in sorted((out / "frames").glob("frame_*.png"))])
        outputs[chunk] = pasted
    assert pasted.shape == (frames, *photo.shape)
    assert np.abs(outputs[5].astype(int) - outputs[64].astype(int)).max() <= 1, "chunks agree"

    left, top, side = record["source_crop_box"]
    far = np.ones(photo.shape[:2], bool)
    far[max(top, 0) : top + side, max(left, 0) : left + side] = False
    assert far.mean() > 0.5
    assert (pasted[:, far] == photo[far]).all(), "away from the face: the photo, unchanged"
    border = int(np.ceil(0.1 * side))
    inner = (slice(top + border, top + side - border), slice(left + border, left + side - border))
    for index in (0, frames - 1):
        generated = grid[index, :, 4 * SIZE :, :]
        resampled = cv2.resize(generated, (side, side), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(
            pasted[index][inner], resampled[border : side - border, border : side - border]
        ), "inside the face box: the generated crop, resampled to the photo"
    structure = grid[..., 3 * SIZE : 4 * SIZE, :].astype(int)
    assert np.abs(structure[-1] - structure[0]).mean() > 1, "the head's motion reached the source"
    # the seam: the step between neighbouring pixels across the box's left edge stays small
    # compared with the jump between photo and face a hard paste would make
    row = top + side // 2
    band = pasted[:, row, left - 2 : left + border + 2].astype(int)
    hard = np.abs(pasted[:, row, left + border].astype(int) - photo[row, left - 1].astype(int))
    assert np.abs(np.diff(band, axis=1)).max() <= max(hard.max() // 2, 12)


# ---------------------------------------------------------------- photo decoding


def _face_photo(takes) -> np.ndarray:
    """A synthetic face on a taller canvas (64 wide, 96 high), so a turn changes its shape."""
    face = iio.imread(list(takes.values())[0] / "img_0000.jpg")
    return np.concatenate([face, np.repeat(face[-1:], 32, axis=0)])


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, 1), (8, -1)])
def test_exif_orientation_turns_a_phone_photo_upright(orientation, turns, takes, tmp_path):
    from PIL import Image

    from frgan.inference.frames import read_image

    upright = _face_photo(takes)
    stored = np.ascontiguousarray(np.rot90(upright, turns))  # as the phone's sensor saw it
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation: how a viewer must turn the stored pixels
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    decoded = read_image(path)
    assert decoded.shape == upright.shape
    assert np.abs(decoded.astype(int) - upright.astype(int)).mean() < 4


def _write_png(path: Path, pixels: np.ndarray, **options) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path, **options)
    return path


def test_16_bit_and_float_images_are_scaled_not_clipped(takes, tmp_path):
    import cv2

    from frgan.inference.frames import read_image

    face = _face_photo(takes)
    wide = face.astype(np.uint16) * 257  # the same picture with 16-bit samples
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    _write_png(tmp_path / "grey16.png", grey.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb16.png"), wide[..., ::-1])
    decoded_grey = read_image(tmp_path / "grey16.png")
    assert np.array_equal(decoded_grey, np.repeat(grey[..., None], 3, axis=-1))
    assert np.abs(read_image(tmp_path / "rgb16.png").astype(int) - face).max() <= 1
    cv2.imwrite(str(tmp_path / "grey16.tif"), grey.astype(np.uint16) * 257)
    assert np.array_equal(read_image(tmp_path / "grey16.tif")[..., 0], grey)
    cv2.imwrite(str(tmp_path / "float.tif"), (grey / 255).astype(np.float32))  # samples 0..1
    assert np.abs(read_image(tmp_path / "float.tif")[..., 0].astype(int) - grey).max() <= 1


def test_grey_transparent_palette_and_cmyk_images_decode_as_shown(takes, tmp_path):
    import warnings

    from PIL import Image

    from frgan.inference.frames import read_image

    face = _face_photo(takes)
    grey = np.asarray(Image.fromarray(face).convert("L"))
    assert np.array_equal(
        read_image(_write_png(tmp_path / "grey.png", grey)), np.repeat(grey[..., None], 3, -1)
    )
    # transparent pixels whose hidden colour is green show as white, opaque ones as they are
    rgba = np.concatenate([face, np.full((*face.shape[:2], 1), 255, np.uint8)], axis=-1)
    rgba[:20] = (0, 255, 0, 0)
    decoded = read_image(_write_png(tmp_path / "rgba.png", rgba))
    assert (decoded[:20] == 255).all() and np.array_equal(decoded[20:], face[20:])
    # a palette image with a transparent entry: white, and no warning from Pillow
    palette = Image.fromarray(face).quantize(16)
    index = np.asarray(palette)[0, 0]
    palette.save(tmp_path / "palette.png", transparency=int(index))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = read_image(tmp_path / "palette.png")
    transparent = np.asarray(palette) == index
    assert (decoded[transparent] == 255).all()
    shown = np.asarray(palette.convert("RGB"))
    assert np.array_equal(decoded[~transparent], shown[~transparent])
    Image.fromarray(face).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "cmyk.jpg").astype(int) - face).mean() < 4


@pytest.mark.parametrize("kind", ["exif-turned jpeg", "16-bit grey png", "16-bit rgb png"])
def test_phone_and_16_bit_photos_of_a_face_animate(
    kind, trained_run, takes, astronaut, capsys, tmp_path
):
    """The faults of the hostile run: a phone photo came out sideways, a 16-bit PNG was clipped
    to white and then had "no face"."""
    import cv2
    from PIL import Image

    photo = iio.imread(astronaut)[:400]  # 512 wide, 400 high: a turn shows in the size
    if kind == "exif-turned jpeg":
        source = tmp_path / "phone.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(np.ascontiguousarray(np.rot90(photo))).save(source, exif=exif, quality=95)
    elif kind == "16-bit grey png":
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        source = _write_png(tmp_path / "grey16.png", grey)
    else:
        source = tmp_path / "rgb16.png"
        cv2.imwrite(str(source), (photo.astype(np.uint16) * 257)[..., ::-1])
    status, _, err = run_generate(
        capsys, tmp_path / "out", f"ckpt={trained_run}", f"source={source}",
        f"driver={list(takes.values())[0]}", "max_frames=2", "paste_back=true",
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((tmp_path / "out" / "generate.json").read_text())
    assert record["source_size"] == [512, 400], "upright, at the photo's own size"
