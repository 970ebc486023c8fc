"""RefineGAN and its 3D networks on random clips: shapes for any clip length, the frozen
forecaster, losses, self-contained checkpoints, forecaster errors, samples."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import fit_quietly
from torch.utils.data import Dataset

from frgan.errors import ConfigError
from frgan.models import ClipCritic, ForecastGAN, RefineGAN, RefineGenerator, load_model
from frgan.models.clip_architecture import clip_architecture
from frgan.models.forecaster import newest_forecast_run, resolve_forecast_ckpt
from frgan.render.face68 import mean_face68

SIZE = 16  # tiny preset at 16 px: half-size stem, 1 level


def _clip(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, SIZE, SIZE, generator=generator) * 2 - 1


def _forecast_checkpoint(path, image_size: int = SIZE, **options) -> ForecastGAN:
    """A ForecastGAN checkpoint file as frgan.train writes its identity and weights."""
    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=image_size, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"frgan_model": model.identity(), "state_dict": model.state_dict()}, path)
    return model


@pytest.fixture
def forecast_file(tmp_path):
    path = tmp_path / "forecast" / "checkpoints" / "last.ckpt"
    _forecast_checkpoint(path, ema_decay=0.9)
    return path


class RandomClips(Dataset):
    def __init__(self, frames: int = 5, retargeted_scale: float | None = None):
        self.frames, self.retargeted_scale = frames, retargeted_scale

    def __len__(self):
        return 8

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        image = lambda: torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1  # noqa: E731
        clip = lambda: torch.rand(self.frames, 3, SIZE, SIZE, generator=g) * 2 - 1  # noqa: E731
        sample = {"x0": image(), "s0": image(), "frames": clip(), "structures": clip()}
        face = torch.from_numpy(mean_face68(SIZE, SIZE)[:, :2]).float()
        sample["landmarks"] = face.expand(self.frames, 68, 2)
        if self.retargeted_scale is not None:
            retargeted = index % 2 == 1
            if retargeted:
                sample["frames"] = sample["frames"] * self.retargeted_scale
            sample["retargeted"] = torch.tensor(retargeted)
        return sample


def _fit(model: RefineGAN, root, clips=None, **options) -> pl.Trainer:
    return fit_quietly(model, root, clips if clips is not None else RandomClips(), **options)


@pytest.mark.parametrize("frames", [4, 5, 7])
@pytest.mark.parametrize("output", ["mask", "additive"])
def test_networks_take_any_clip_length_and_start_as_the_forecast(frames, output):
    torch.manual_seed(0)
    arch = clip_architecture("tiny", SIZE)
    generator, critic = RefineGenerator(arch, output), ClipCritic(arch)
    forecast, structures = _clip(2, frames, 1), _clip(2, frames, 2)
    refined = generator(forecast, structures, forecast[:, 0])
    assert refined.clip.shape == (2, frames, 3, SIZE, SIZE)
    assert refined.clip.abs().max() <= 1
    # an untrained refiner keeps the forecast: exactly (additive) or nearly (mask: w < 0.05)
    tolerance = 0.0 if output == "additive" else 0.1
    assert (refined.clip - forecast).abs().max() <= tolerance
    assert (refined.mask is None) == (output == "additive")
    assert critic(refined.clip, structures).shape == (2,)


@pytest.mark.parametrize("output", ["mask", "additive"])
def test_forecast_smoothing_starts_from_a_learnt_low_pass_of_the_forecast(output):
    torch.manual_seed(0)
    arch = clip_architecture("tiny", SIZE)
    forecast, structures = _clip(2, 5, 1), _clip(2, 5, 2)
    exact = RefineGenerator(arch, "additive", smoothing=0.0)(forecast, structures, forecast[:, 0])
    torch.testing.assert_close(exact.clip, forecast)
    generator = RefineGenerator(arch, output, smoothing=0.5)
    refined = generator(forecast, structures, forecast[:, 0])
    # frame 2 of 5 starts halfway between itself and the mean of frames 1 and 3
    expected = 0.5 * forecast[:, 2] + 0.25 * (forecast[:, 1] + forecast[:, 3])
    tolerance = 0.0 if output == "additive" else 0.1
    assert (refined.clip[:, 2] - expected).abs().max() <= tolerance + 1e-6
    # the end frames repeat themselves as their missing neighbour
    expected_first = 0.75 * forecast[:, 0] + 0.25 * forecast[:, 1]
    assert (refined.clip[:, 0] - expected_first).abs().max() <= tolerance + 1e-6
    refined.clip.sum().backward()
    assert generator.smoothing.grad is not None and generator.smoothing.grad != 0
    assert "smoothing" not in dict(RefineGenerator(arch, output).named_parameters())
    with pytest.raises(ValueError, match="model.forecast_smoothing"):
        RefineGenerator(arch, output, smoothing=1.5)


def test_paper_preset_is_gpu_scale_and_presets_are_checked():
    def count(preset):
        with torch.device("meta"):
            return sum(p.numel() for p in RefineGenerator.from_preset(preset, 64).parameters())

    assert count("paper") > 5_000_000 and count("paper") > 20 * count("small")
    with pytest.raises(ConfigError, match=r"model.preset='huge' is unknown.*paper, small, tiny"):
        clip_architecture("huge", 64)
    with pytest.raises(ConfigError, match=r"exactly \['base', 'max_channels'\]"):
        clip_architecture({"base": 4}, 64)


def test_forecaster_is_frozen_in_eval_mode_and_outside_the_optimizers(forecast_file):
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
    model.train()
    assert not model.forecaster.training
    assert not any(p.requires_grad for p in model.forecaster.parameters())
    optimized = {
        id(p) for opt in model.configure_optimizers() for g in opt.param_groups for p in g["params"]
    }
    assert not optimized & {id(p) for p in model.forecaster.parameters()}
    # the EMA generator of the checkpoint is what forecasts
    source = ForecastGAN(preset="tiny", image_size=SIZE, ema_decay=0.9)
    source.load_state_dict(torch.load(forecast_file, weights_only=True)["state_dict"])
    x0, s0, st = (_clip(2, 1, seed)[:, 0] for seed in range(3))
    expected = source.eval().generator_ema(x0, s0, st).frame
    torch.testing.assert_close(model.forecast(x0, s0, st[:, None])[:, 0], expected)


@pytest.mark.parametrize(
    ("precision", "options"),
    [
        ("32-true", {}),
        ("bf16-mixed", {"adversarial": "ranking", "output": "additive", "ema_decay": 0.9}),
    ],
)
def test_training_updates_the_refiner_only_and_logs_clip_metrics(
    forecast_file, tmp_path, precision, options
):
    torch.manual_seed(0)
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE, **options)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _fit(model, tmp_path, precision=precision)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generator.") for k in changed)
    assert any(k.startswith("critic.") for k in changed)
    assert not any(k.startswith("forecaster.") for k in changed)
    logged = trainer.callback_metrics
    losses = ["d_loss", "g_loss", "l1", "temporal", "gp", "wdist"]
    losses += ["rank_real", "rank_forecast"] if "adversarial" in options else ["mask"]
    for name in losses:
        assert math.isfinite(logged[f"train/{name}"]), name
    for prefix in ("", "forecast_", "copy_"):
        for name in (
            "psnr",
            "ssim_moving",
            "temporal_error",
            "flicker",
            "psnr_mouth",
            "mae_face_rest",
        ):
            assert math.isfinite(logged[f"val/{prefix}{name}"]), prefix + name
    assert math.isfinite(logged["val/psnr_eyes_brows_gain"])
    # copying x0 never changes a pixel: its flicker is the true change where it is small
    assert 0 < logged["val/copy_flicker"] <= model.hparams.moving_threshold


def test_ranking_critic_loss_orders_real_refined_forecast(forecast_file):
    model = RefineGAN(
        forecast_ckpt=str(forecast_file),
        preset="tiny",
        image_size=SIZE,
        adversarial="ranking",
        ranking_margins=(1.0, 0.5),
        gp_weight=0.0,
    )
    batch = {k: v[None] for k, v in RandomClips()[0].items()}
    inputs = model.generator_inputs(batch)
    output = model.run_generator(inputs, model.generator)
    scores = {
        inputs["frames"].data_ptr(): 3.0,  # real
        output.clip.data_ptr(): 2.5,  # refined
        inputs["forecast"].data_ptr(): 0.0,  # forecast
    }

    class FixedScores(torch.nn.Module):
        def forward(self, clip, structures):
            return torch.full((clip.shape[0],), scores[clip.data_ptr()])

    model.critic = FixedScores()
    model.gradient_penalty = lambda *args, **kwargs: torch.tensor(0.0)
    loss, logs = model.critic_loss(inputs, output)
    # real - refined = 0.5 < margin 1: hinge 0.5; refined - forecast = 2.5 > margin 0.5: 0
    assert logs["rank_real"].item() == pytest.approx(0.5)
    assert logs["rank_forecast"].item() == 0.0
    assert loss.item() == pytest.approx(0.5)


def test_retargeted_clips_never_reach_the_reconstruction_losses(forecast_file, tmp_path):
    def train_once(scale):
        torch.manual_seed(0)
        model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
        _fit(model, tmp_path, clips=RandomClips(retargeted_scale=scale))
        return model.state_dict()

    plain, scaled = train_once(1.0), train_once(0.1)
    assert all(torch.equal(plain[k], scaled[k]) for k in plain)


def test_refine_checkpoint_is_self_contained(forecast_file, tmp_path):
    torch.manual_seed(0)
    model = RefineGAN(
        forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE, forecast_smoothing=0.5
    )
    trainer = _fit(model, tmp_path, limit_train_batches=1)
    run = tmp_path / "refine_run"
    (run / "checkpoints").mkdir(parents=True)
    trainer.save_checkpoint(run / "checkpoints" / "last.ckpt")
    x0, s0, structures = _clip(1, 1, 0)[:, 0], _clip(1, 1, 1)[:, 0], _clip(1, 9, 2)
    expected = model.eval().animate(x0, s0, structures)

    forecast_file.unlink()  # the forecast checkpoint is gone: the refine one suffices
    for loaded in (
        load_model(run),
        RefineGAN.load_from_checkpoint(run / "checkpoints" / "last.ckpt").eval(),
    ):
        assert isinstance(loaded, RefineGAN)
        clips = loaded.animate(x0, s0, structures)  # 9 frames: not the trained length
        assert set(clips) == {"forecast", "refined"}
        for name in clips:
            torch.testing.assert_close(clips[name], expected[name])
    assert loaded.identity()["forecaster"] == {
        "class": "ForecastGAN",
        "preset": "tiny",
        "image_size": SIZE,
        "ema": True,
    }


def test_identity_includes_the_forecaster(forecast_file, tmp_path):
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
    path = tmp_path / "refine.ckpt"
    _fit(model, tmp_path, limit_train_batches=1).save_checkpoint(path)
    other = tmp_path / "other_forecast.ckpt"
    _forecast_checkpoint(other)  # no EMA: another forecaster
    with pytest.raises(ValueError, match="forecaster"):
        RefineGAN(forecast_ckpt=str(other), preset="tiny", image_size=SIZE).check_checkpoint(path)


def test_forecast_ckpt_errors_name_the_key(forecast_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.forecast_ckpt"):
        RefineGAN(forecast_ckpt=str(tmp_path / "missing.ckpt"), preset="tiny", image_size=SIZE)
    with pytest.raises(ConfigError, match=r"model.forecast_ckpt=.*trained at 16 px.*32 px"):
        RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=32)
    refine = tmp_path / "refine.ckpt"
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
    torch.save({"frgan_model": model.identity(), "state_dict": model.state_dict()}, refine)
    with pytest.raises(ConfigError, match="model.forecast_ckpt=.* holds RefineGAN, not a Fore"):
        RefineGAN(forecast_ckpt=str(refine), preset="tiny", image_size=SIZE)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="model.forecast_ckpt"):
        RefineGAN(forecast_ckpt=str(junk), preset="tiny", image_size=SIZE)


def test_best_and_last_find_the_newest_forecast_run(tmp_path):
    import os

    older = tmp_path / "train" / "runs" / "a"
    newer = tmp_path / "train" / "runs" / "b"
    _forecast_checkpoint(older / "checkpoints" / "last.ckpt")
    _forecast_checkpoint(newer / "checkpoints" / "last.ckpt")
    _forecast_checkpoint(newer / "checkpoints" / "epoch_001.ckpt")
    os.utime(older / "checkpoints" / "last.ckpt", (1, 1))
    # a newer refine run is not a forecast run
    refine_run = tmp_path / "refine" / "runs" / "c" / "checkpoints"
    forecast = newer / "checkpoints" / "last.ckpt"
    refine = RefineGAN(forecast_ckpt=str(forecast), preset="tiny", image_size=SIZE)
    refine_run.mkdir(parents=True)
    torch.save({"frgan_model": refine.identity(), "state_dict": {}}, refine_run / "last.ckpt")

    assert newest_forecast_run(tmp_path) == newer
    assert resolve_forecast_ckpt("last", tmp_path) == newer / "checkpoints" / "last.ckpt"
    assert resolve_forecast_ckpt("best", tmp_path) == newer / "checkpoints" / "epoch_001.ckpt"
    assert resolve_forecast_ckpt(str(older), tmp_path) == older / "checkpoints" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="model.forecast_ckpt: no forecast run"):
        resolve_forecast_ckpt("best", tmp_path / "nothing")


def test_short_clips_and_wrong_batches_are_refused(forecast_file):
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
    batch = {k: v[None] for k, v in RandomClips(frames=3)[0].items()}
    with pytest.raises(ValueError, match="data.clip_length >= 4"):
        model.generator_inputs(batch)
    with pytest.raises(ValueError, match="data.stage=refine"):
        model.generator_inputs({"x0": batch["x0"], "s0": batch["s0"], "xt": batch["x0"]})


def test_sample_draws_structure_truth_forecast_refined(forecast_file, tmp_path):
    import imageio.v3 as iio

    from frgan.callbacks import SampleMedia

    model = RefineGAN(forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE)
    _fit(model, tmp_path, limit_train_batches=1, callbacks=[SampleMedia(rows=2, max_frames=4)])
    assert model.sample_columns == ("structure", "ground truth", "forecast", "refined")
    gif = iio.imread(tmp_path / "samples" / "epoch_000.gif", index=None)
    assert gif.shape[:3] == (4, SIZE, 4 * SIZE)  # max_frames frames of one clip, 4 columns
    assert (tmp_path / "samples" / "epoch_000.mp4").is_file()
    assert iio.imread(tmp_path / "samples" / "epoch_000.png").shape == (2 * SIZE, 4 * SIZE, 3)


def test_adversarial_weight_scales_the_critic_term_and_zero_leaves_it_out(forecast_file):
    batch = {k: v[None] for k, v in RandomClips()[0].items()}

    def generator_loss(weight):
        torch.manual_seed(0)
        model = RefineGAN(
            forecast_ckpt=str(forecast_file),
            preset="tiny",
            image_size=SIZE,
            output="additive",
            adversarial_weight=weight,
        )
        inputs = model.generator_inputs(batch)
        loss, logs = model.generator_loss(inputs, model.run_generator(inputs, model.generator))
        return model, loss, logs

    model, loss, logs = generator_loss(0.0)
    assert "adversarial" not in logs
    hp = model.hparams
    torch.testing.assert_close(
        loss, hp.l1_weight * logs["l1"] + hp.temporal_weight * logs["temporal"]
    )
    loss.backward()
    assert all(p.grad is None for p in model.critic.parameters())

    _, weighted, logs = generator_loss(0.25)
    torch.testing.assert_close(weighted, loss + 0.25 * logs["adversarial"])
    with pytest.raises(ConfigError, match="model.adversarial_weight must be >= 0"):
        generator_loss(-1.0)


def test_generator_lr_sets_the_refiners_rate_only(forecast_file):
    def rates(**options):
        model = RefineGAN(
            forecast_ckpt=str(forecast_file), preset="tiny", image_size=SIZE, **options
        )
        return [[g["lr"] for g in opt.param_groups] for opt in model.configure_optimizers()]

    assert rates(lr=1e-4, generator_lr=2e-3) == [[1e-4], [2e-3]]
    assert rates(lr=1e-4) == [[1e-4], [1e-4]]
    with pytest.raises(ConfigError, match="model.generator_lr"):
        rates(generator_lr=0.0)
    with pytest.raises(ConfigError, match="model.forecast_smoothing"):
        rates(forecast_smoothing=1.5)


def test_forecaster_of_another_structure_mesh_is_refused_and_the_mesh_is_in_the_identity(
    tmp_path,
):
    path = tmp_path / "mesh468.ckpt"
    _forecast_checkpoint(path, structure_mesh="mesh468")
    with pytest.raises(
        ConfigError, match="data.structure_mesh=mesh468.*data.structure_mesh=face68"
    ):
        RefineGAN(forecast_ckpt=str(path), preset="tiny", image_size=SIZE)
    model = RefineGAN(
        forecast_ckpt=str(path), preset="tiny", image_size=SIZE, structure_mesh="mesh468"
    )
    assert model.identity()["structure_mesh"] == "mesh468"
    assert model.identity()["forecaster"]["structure_mesh"] == "mesh468"


def test_an_editing_warping_forecaster_is_rebuilt_as_one(tmp_path):
    path = tmp_path / "edit.ckpt"
    forecast = _forecast_checkpoint(path, residual="edit", warp=True, head_blocks=1).eval()
    with torch.no_grad():
        forecast.generator.to_flow.bias.fill_(0.1)  # a flow that is not zero
        forecast.generator.head_blocks[0].conv2.bias.fill_(0.1)  # a head block that acts
    torch.save({"frgan_model": forecast.identity(), "state_dict": forecast.state_dict()}, path)
    model = RefineGAN(forecast_ckpt=str(path), preset="tiny", image_size=SIZE)
    assert model.forecaster.residual == "edit" and model.forecaster.to_flow is not None
    forecaster = model.identity()["forecaster"]
    assert forecaster["residual"] == "edit" and forecaster["warp"] is True
    assert forecaster["head_blocks"] == 1
    x0, s0, st = _clip(2, 1, 0)[:, 0], _clip(2, 1, 1)[:, 0], _clip(2, 1, 2)[:, 0]
    torch.testing.assert_close(model.forecaster(x0, s0, st).frame, forecast(x0, s0, st).frame)


class ClipsWithSourceLandmarks(RandomClips):
    def __getitem__(self, index):
        sample = super().__getitem__(index)
        g = torch.Generator().manual_seed(index)
        sample["l0"] = sample["landmarks"][0]
        sample["landmarks"] = sample["landmarks"] + torch.randn(self.frames, 68, 2, generator=g)
        return sample


def test_a_landmark_warping_forecaster_is_rebuilt_as_one_and_fed_the_landmarks(tmp_path):
    path = tmp_path / "spline.ckpt"
    forecast = _forecast_checkpoint(path, residual="edit", warp=True, landmark_warp=True).eval()
    model = RefineGAN(forecast_ckpt=str(path), preset="tiny", image_size=SIZE)
    assert model.forecaster.landmark_warp and model.identity()["forecaster"]["landmark_warp"]
    clips = ClipsWithSourceLandmarks()
    sample = {k: v[None] for k, v in clips[0].items()}
    forecast_clip = model.forecast(sample["x0"], sample["s0"], sample["structures"],
                                   sample["l0"], sample["landmarks"])  # fmt: skip
    one = forecast(sample["x0"], sample["s0"], sample["structures"][:, 3],
                   sample["l0"], sample["landmarks"][:, 3]).frame  # fmt: skip
    torch.testing.assert_close(forecast_clip[:, 3], one, atol=1e-5, rtol=0)
    _fit(model, tmp_path, clips)  # training steps and validation feed the forecaster both
    loader = torch.utils.data.DataLoader(clips, batch_size=2)
    drawn = model.select_sample(loader, max_frames=3)  # and the samples a callback draws
    assert drawn["l0"].shape == (68, 2) and drawn["landmarks"].shape == (3, 68, 2)
    assert model.draw_sample(drawn).shape == (3, 3, SIZE, 4 * SIZE)
    with pytest.raises(ValueError, match="needs the landmarks"):
        model.forecast(sample["x0"], sample["s0"], sample["structures"])
