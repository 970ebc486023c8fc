"""data.structure_mesh end to end: config checks, shards, rendering, checkpoints, ground truth."""

from __future__ import annotations

import hydra
import numpy as np
import pytest
from conftest import TINY_DATA, compose_config

from frgan.data.errors import DataError
from frgan.data.landmarks.mediapipe_68 import MEDIAPIPE_TO_68
from frgan.data.prepare import PrepareSettings
from frgan.data.shards import load_manifest
from frgan.data.smoothing import one_euro, savgol, smoother
from frgan.data.structure import StructureRenderer
from frgan.errors import ConfigError
from frgan.render.mesh468 import mean_mesh468

MESH468 = ["data.structure_mesh=mesh468"]


def data_config(data_dir, *overrides):
    return compose_config("train.yaml", [f"paths.data_dir={data_dir}", *TINY_DATA, *overrides])


def test_face68_keeps_its_shard_folder_and_mesh468_gets_its_own(tmp_path):
    assert data_config(tmp_path).data.shard_dir.endswith("/synthetic/shards/64px")
    assert data_config(tmp_path, *MESH468).data.shard_dir.endswith("/shards/64px-mesh468")
    assert data_config(tmp_path, *MESH468).model.structure_mesh == "mesh468"


def test_face_alignment_cannot_give_468_points(tmp_path):
    cfg = data_config(tmp_path, *MESH468, "data.prepare.landmarks=face_alignment")
    with pytest.raises(Exception) as error:  # noqa: PT011 — Hydra wraps it; the cause is ours
        hydra.utils.instantiate(cfg.data)
    assert isinstance(error.value.__cause__, ConfigError)
    message = str(error.value.__cause__)
    assert "data.prepare.landmarks=face_alignment" in message
    assert "data.structure_mesh=mesh468" in message and "mediapipe" in message


def test_unknown_mesh_names_the_choices():
    with pytest.raises(ValueError, match="face68, mesh468"):
        StructureRenderer("normal", 64, mesh="mesh999")


def test_renderer_refuses_landmarks_of_the_other_mesh():
    with pytest.raises(ValueError, match=r"\[N, 468, 3\]"):
        StructureRenderer("normal", 32, mesh="mesh468")(np.zeros((1, 68, 3), np.float32))


@pytest.mark.parametrize("kind", ["normal", "normal_camera", "depth", "normal_parts"])
def test_mesh468_renders_every_structure_kind(kind):
    landmarks = mean_mesh468(32, 32)[None].repeat(2, 0)
    maps = StructureRenderer(kind, 32, mesh="mesh468")(landmarks)
    assert maps.shape == (2, 3, 32, 32) and np.isfinite(maps).all()
    assert (np.abs(maps).sum(1) > 0).mean() > 0.2


def test_new_settings_at_their_defaults_keep_the_digest_of_existing_shards():
    values = PrepareSettings().as_dict()
    assert not {"structure_mesh", "landmark_smoothing", "landmark_smoothing_options"} & set(values)
    assert PrepareSettings(structure_mesh="mesh468").as_dict()["structure_mesh"] == "mesh468"
    assert PrepareSettings(structure_mesh="mesh468").digest() != PrepareSettings().digest()


def test_synthetic_ground_truth_in_468_points_follows_the_68(tiny_data_dir):
    from frgan.synthetic.take_video import render_take

    take = render_take(0, 1, "surprise", 0, image_size=64, min_frames=16, max_frames=16)
    assert take.landmarks_468.shape == (16, 468, 3)
    # eyes, nose and mouth of both topologies agree to a pixel or two at 64 px
    inner = take.landmarks_468[:, MEDIAPIPE_TO_68][:, 27:, :2] - take.landmarks[:, 27:, :2]
    assert np.median(np.linalg.norm(inner, axis=-1)) < 2.0
    # the points move with the face: the mouth opening of both follows the expression
    opening68 = take.landmarks[:, 66, 1] - take.landmarks[:, 62, 1]
    opening468 = take.landmarks_468[:, 14, 1] - take.landmarks_468[:, 13, 1]
    assert opening68.max() - opening68.min() > 1.0
    assert np.abs(opening468 - opening68).max() < 0.5


SMOOTHED_MESH468 = [*MESH468, "data.prepare.landmark_smoothing=savgol"]


def test_mesh468_shards_from_ground_truth_render_and_refuse_face68(tiny_data_dir):
    datamodule = hydra.utils.instantiate(data_config(tiny_data_dir, *SMOOTHED_MESH468).data)
    datamodule.prepare_data()
    manifest = load_manifest(datamodule.shard_dir)
    assert manifest["structure_mesh"] == "mesh468" and manifest["landmark_points"] == 468
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["st"].shape == (4, 3, 64, 64)

    # face68 pointed at the mesh468 shards: one clear error telling to prepare elsewhere
    wrong = data_config(tiny_data_dir, f"data.shard_dir={datamodule.shard_dir}")
    with pytest.raises(DataError, match="another data.shard_dir"):
        hydra.utils.instantiate(wrong.data).prepare_data()


def test_the_mesh_is_part_of_a_checkpoints_identity_only_beyond_face68():
    from frgan.models.gan import structure_identity

    assert structure_identity({"structure_mesh": "face68"}) == {}
    assert structure_identity({}) == {}  # checkpoints from before meshes keep their identity
    assert structure_identity({"structure_mesh": "mesh468"}) == {
        "structure_mesh": "mesh468",
        "landmark_points": 468,
    }


@pytest.mark.slow
def test_a_mesh468_checkpoint_is_refused_by_a_face68_config(tiny_data_dir, tmp_path):
    from conftest import TINY_RUN

    from frgan.train import train

    base = [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN]
    run = compose_config(
        "train.yaml", [*base, *SMOOTHED_MESH468, "test=false"], run_dir=tmp_path / "run"
    )
    _, objects = train(run)
    assert objects["model"].identity()["landmark_points"] == 468
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    face68 = compose_config("train.yaml", [*base, f"ckpt_path={last}"], run_dir=tmp_path / "other")
    with pytest.raises(ValueError, match="structure_mesh='mesh468'"):
        train(face68)


def test_savgol_keeps_smooth_motion_and_removes_jitter():
    frames = np.arange(30, dtype=np.float64)
    motion = np.stack([0.05 * frames**2, 2 * frames, np.zeros(30)], -1)[:, None]  # [T,1,3]
    np.testing.assert_allclose(savgol(motion, window=7, polyorder=2), motion, atol=1e-3)
    noisy = motion + np.random.default_rng(0).normal(0, 1.0, motion.shape)
    jitter = np.abs(np.diff(savgol(noisy) - motion, axis=0)).mean()
    assert jitter < 0.5 * np.abs(np.diff(noisy - motion, axis=0)).mean()
    assert savgol(noisy[:2]).shape == (2, 1, 3)  # shorter than any window: unchanged


def test_one_euro_steadies_a_still_point_and_follows_a_move():
    rng = np.random.default_rng(1)
    still = rng.normal(0, 1.0, (60, 2, 3))
    assert np.abs(np.diff(one_euro(still), axis=0)).mean() < 0.5 * np.abs(np.diff(still, 0)).mean()
    step = np.zeros((60, 1, 3))
    step[20:] = 30.0
    assert abs(one_euro(step)[40, 0, 0] - 30.0) < 1.0


def test_bad_smoothing_settings_are_clear_errors():
    with pytest.raises(ValueError, match="none, savgol, one_euro"):
        smoother("kalman")
    with pytest.raises(ValueError, match="do not apply to savgol"):
        smoother("savgol", beta=1.0)
    with pytest.raises(ValueError, match="odd window"):
        PrepareSettings(landmark_smoothing="savgol", landmark_smoothing_options={"window": 4})


def test_generate_never_picks_face_alignment_for_a_mesh468_model(tmp_path):
    from frgan.inference.faces import choose_landmark_source

    assert choose_landmark_source("auto", tmp_path, "mesh468") == "mediapipe"
    assert choose_landmark_source("mediapipe", tmp_path, "mesh468") == "mediapipe"
    with pytest.raises(ConfigError, match="needs 468"):
        choose_landmark_source("face_alignment", tmp_path, "mesh468")


def test_mediapipe_gives_468_points_on_the_synthetic_ground_truth():
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    from frgan.data.landmarks import build_landmark_source
    from frgan.inference.faces import quiet_native_output
    from frgan.synthetic.take_video import render_take

    take = render_take(0, 2, "happiness", 0, image_size=128, min_frames=6, max_frames=6)
    with quiet_native_output():
        found = build_landmark_source("mediapipe", structure_mesh="mesh468")(take.images)
    assert found.shape == (6, 468, 3) and np.isfinite(found).all()
    distance = np.linalg.norm(found[..., :2] - take.landmarks_468[..., :2], axis=-1)
    assert np.median(distance) < 2.0  # pixels of the 128 px frame
