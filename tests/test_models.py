import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import compose_config, fit_quietly, quiet_trainer
from torch.utils.data import Dataset

from frgan.errors import ConfigError
from frgan.models import Critic, ForecastGAN, Generator, architecture, blocks, supported_image_sizes
from frgan.models.generator import composite
from frgan.models.warp import warp

SIZE = 16  # tiny preset at 16 px: 2 levels, bottleneck 4x4


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("image_size", "generator_params", "critic_params"),
    [(64, 70_326_596, 13_286_977), (96, 74_268_996, 13_297_217), (128, 114_577_220, 20_366_401)],
)
def test_paper_preset_has_the_released_parameter_counts(
    image_size, generator_params, critic_params
):
    with torch.device("meta"):  # no memory, no init
        assert _count(Generator.from_preset("paper", image_size)) == generator_params
        assert _count(Critic.from_preset("paper", image_size)) == critic_params


def test_depth_rule():
    assert architecture("paper", 64).channels == (64, 128, 256, 512, 512)
    assert architecture("paper", 96).bottleneck == 6
    assert architecture("paper", 128).levels == 5
    assert {16, 64, 96, 128} <= set(supported_image_sizes())


@pytest.mark.parametrize("bad_size", [72, 100, 7, "64"])
def test_unsupported_image_size_is_refused_with_the_valid_sizes(bad_size):
    with pytest.raises(
        ConfigError, match=r"model.image_size=.* not supported.*Valid sizes.*64, 80, 96"
    ):
        architecture("small", bad_size)


def test_unknown_preset_and_bad_options_are_refused():
    with pytest.raises(
        ConfigError, match=r"model.preset='huge' is unknown; valid presets: paper, small, tiny"
    ):
        ForecastGAN(preset="huge")
    with pytest.raises(ConfigError, match="model.gp_on"):
        ForecastGAN(preset="tiny", image_size=SIZE, gp_on="both")
    with pytest.raises(ConfigError, match="model.n_critic"):
        ForecastGAN(preset="tiny", image_size=SIZE, n_critic=0)


@pytest.mark.parametrize("batch", [2, 64])  # the literal and the folded computation
def test_folded_convolutions_equal_the_literal_ones(batch):
    torch.manual_seed(0)
    conv = blocks.conv3x3(5, 7).double()
    x = torch.randn(batch, 5, 8, 8, dtype=torch.double)
    upsampled = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(blocks.conv3x3_of_upsampled(x, conv), upsampled)
    torch.testing.assert_close(blocks.avgpool_of_conv3x3(x, conv), F.avg_pool2d(conv(x), 2))


@pytest.mark.parametrize("warp_on", [False, True])
def test_the_stacked_head_equals_the_mask_residual_and_flow_convolutions(warp_on):
    torch.manual_seed(0)
    generator = Generator.from_preset("tiny", SIZE, warp=warp_on).double()
    features = torch.randn(2, generator.to_mask.in_channels, SIZE, SIZE, dtype=torch.double)
    mask, residual, flow = generator.head(features)
    torch.testing.assert_close(mask, generator.to_mask(features))
    torch.testing.assert_close(residual, generator.to_residual(features))
    if warp_on:
        torch.testing.assert_close(flow, generator.to_flow(features))
    else:
        assert flow is None


def test_generator_and_critic_shapes_and_ranges():
    torch.manual_seed(0)
    generator, critic = Generator.from_preset("tiny", SIZE), Critic.from_preset("tiny", SIZE)
    x0, s0, st = (torch.rand(3, 3, SIZE, SIZE) * 2 - 1 for _ in range(3))
    out = generator(x0, s0, st)
    assert out.frame.shape == out.residual.shape == (3, 3, SIZE, SIZE)
    assert out.mask.shape == (3, 1, SIZE, SIZE)
    assert out.frame.abs().max() <= 1 and out.residual.abs().max() <= 1
    assert 0 <= out.mask.min() and out.mask.max() <= 1
    assert critic(out.frame, st).shape == (3,)


def test_released_initialization():
    torch.manual_seed(0)
    model = ForecastGAN(preset="small", image_size=64)
    conv = model.generator.up_blocks[0].shortcut.weight
    assert abs(conv.std().item() - 0.02) < 0.001 and abs(conv.mean().item()) < 0.001
    norm = model.generator.up_blocks[0].norm1
    assert abs(norm.weight.mean().item() - 1) < 0.01 and not norm.bias.any()
    assert not model.critic.to_score.bias.any() and not model.generator.from_code.bias.any()


def test_zero_mask_copies_the_source_frame():
    x0, r = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(composite(r, torch.zeros(2, 1, SIZE, SIZE), x0), x0)
    generator = Generator.from_preset("tiny", SIZE)
    with torch.no_grad():  # force w = sigmoid(-100) = 0 everywhere
        generator.to_mask.weight.zero_()
        generator.to_mask.bias.fill_(-100.0)
    structures = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(generator(x0, *structures).frame, x0)


@pytest.mark.parametrize("residual", ["paint", "edit"])
def test_a_silent_head_paints_grey_or_keeps_the_source(residual):
    """h = 0: paint draws r = 0 (mid grey), edit draws r = x0, so even a mask that is on
    everywhere leaves the source frame as it was."""
    x0 = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    x0[0, :, 0, 0] = torch.tensor([-1.0, 1.0, 0.0])  # saturated pixels stay finite
    generator = Generator.from_preset("tiny", SIZE, residual)
    with torch.no_grad():
        generator.to_residual.weight.zero_()
        generator.to_residual.bias.zero_()
        generator.to_mask.weight.zero_()
        generator.to_mask.bias.fill_(100.0)  # w = 1: the frame is r
    out = generator(x0, torch.rand_like(x0), torch.rand_like(x0))
    expected = torch.zeros_like(x0) if residual == "paint" else x0
    torch.testing.assert_close(out.residual, expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.frame, expected, atol=1e-3, rtol=0)


def test_residual_is_checked_and_edit_and_warp_are_part_of_the_identity():
    with pytest.raises(ConfigError, match=r"model.residual='blend' is invalid.*paint, edit"):
        ForecastGAN(preset="tiny", image_size=SIZE, residual="blend")
    release = ForecastGAN(preset="tiny", image_size=SIZE)
    edit = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True)
    # checkpoints from before the options keep their identity
    assert not {"residual", "warp"} & set(release.identity())
    assert edit.identity()["residual"] == "edit" and edit.identity()["warp"] is True
    state = {"frgan_model": release.identity(), "state_dict": release.state_dict()}
    with pytest.raises(ValueError, match="residual='edit'.*warp=True"):
        edit.check_identity(state, "release.ckpt")


def test_head_blocks_start_as_the_identity_and_are_part_of_the_identity():
    torch.manual_seed(0)
    plain = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit")
    deep = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", head_blocks=2)
    missing = deep.generator.load_state_dict(plain.generator.state_dict(), strict=False)
    assert missing.missing_keys and all(k.startswith("head_blocks.") for k in missing.missing_keys)
    x0, s0, st = (torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for _ in range(3))
    plain.eval(), deep.eval()
    torch.testing.assert_close(deep(x0, s0, st).frame, plain(x0, s0, st).frame)
    deep(x0, s0, st).frame.square().mean().backward()
    assert deep.generator.head_blocks[0].conv2.weight.grad.abs().sum() > 0
    assert deep.identity()["head_blocks"] == 2 and "head_blocks" not in plain.identity()
    with pytest.raises(ConfigError, match="model.head_blocks"):
        ForecastGAN(preset="tiny", image_size=SIZE, head_blocks=-1)


def test_part_refiners_start_as_the_identity_edit_only_their_window_and_are_identity():
    from frgan.models.forecaster import build_forecaster
    from frgan.models.part_refiner import window_slices

    torch.manual_seed(0)
    plain = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit")
    refined = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", part_refiners=["mouth"])
    missing = refined.generator.load_state_dict(plain.generator.state_dict(), strict=False)
    assert missing.missing_keys
    assert all(k.startswith("part_refiners.mouth.") for k in missing.missing_keys)
    x0, s0, st = (torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for _ in range(3))
    plain.eval(), refined.eval()
    torch.testing.assert_close(refined(x0, s0, st).frame, plain(x0, s0, st).frame)

    refiner = refined.generator.part_refiners["mouth"]
    refiner.to_edit.bias.data.fill_(0.5)  # a refiner that acts
    after, before = refined(x0, s0, st).frame, plain(x0, s0, st).frame
    rows, cols = window_slices("mouth", SIZE)
    inside = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    inside[rows, cols] = True
    changed = (after - before).abs().amax(dim=(0, 1)) > 1e-6
    assert changed[inside].any() and not changed[~inside].any()
    # the edit fades out at the window's border: its outermost pixels change least
    centre = (after - before)[..., (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2]
    border = (after - before)[..., rows.start, (cols.start + cols.stop) // 2]
    assert (border.abs() < centre.abs()).all()

    refined(x0, s0, st).frame.square().mean().backward()
    assert refiner.to_edit.weight.grad.abs().sum() > 0
    assert (
        refined.identity()["part_refiners"] == ["mouth"] and "part_refiners" not in plain.identity()
    )
    rebuilt = build_forecaster(refined.identity())
    assert list(rebuilt.part_refiners) == ["mouth"]
    with pytest.raises(ConfigError, match="model.part_refiners='nose' is invalid"):
        ForecastGAN(preset="tiny", image_size=SIZE, part_refiners=["nose"])


def test_warp_moves_the_image_by_the_flow_in_pixels():
    image = torch.rand(2, 3, 8, 8)
    flow = torch.zeros(2, 2, 8, 8)
    torch.testing.assert_close(warp(image, flow), image)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # every pixel reads 2 to the right and 1 above
    moved = warp(image, flow)
    torch.testing.assert_close(moved[..., 1:, :-2], image[..., :-1, 2:])
    torch.testing.assert_close(moved[..., 0, :], moved[..., 1, :])  # the border is clamped
    flow[:, 0], flow[:, 1] = 0.5, 0.0  # half a pixel: the mean of two neighbours
    torch.testing.assert_close(warp(image, flow)[..., :-1], image.unfold(-1, 2, 1).mean(-1))


def test_a_warping_generator_starts_as_the_plain_one_and_learns_its_flow():
    torch.manual_seed(0)
    plain = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit").generator.eval()
    warping = ForecastGAN(preset="tiny", image_size=SIZE, residual="edit", warp=True)
    warping = warping.generator.eval()
    missing = warping.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["to_flow.bias", "to_flow.weight"]
    x0, s0, st = (torch.rand(2, 3, SIZE, SIZE) * 2 - 1 for _ in range(3))
    out = warping(x0, s0, st)
    assert out.flow.shape == (2, 2, SIZE, SIZE) and not out.flow.any()
    torch.testing.assert_close(out.frame, plain(x0, s0, st).frame)
    out.frame.square().mean().backward()
    assert warping.to_flow.weight.grad.abs().sum() > 0  # zero flow, yet a gradient


def test_gradient_penalty_modes_differ_only_by_the_structure_gradient():
    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=SIZE)
    real, fake, structure = (torch.rand(2, 3, SIZE, SIZE) for _ in range(3))
    torch.manual_seed(1)
    paper = model.gradient_penalty(real, fake, structure).item()
    model.hparams.gp_on = "image"
    torch.manual_seed(1)
    standard = model.gradient_penalty(real, fake, structure).item()
    assert math.isfinite(paper) and math.isfinite(standard) and paper != standard
    assert not structure.requires_grad  # the batch tensor is left alone


class RandomPairs(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return {k: torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1 for k in ("x0", "s0", "xt", "st")}


def _fit(model: ForecastGAN, tmp_path, pairs=None, **trainer_options) -> pl.Trainer:
    """Fit on `pairs` (default RandomPairs) with a quiet CPU trainer; `trainer_options` override."""
    return fit_quietly(
        model, tmp_path, pairs if pairs is not None else RandomPairs(), **trainer_options
    )


@pytest.mark.parametrize(
    ("precision", "options"),
    [("32-true", {}), ("bf16-mixed", {"ema_decay": 0.9, "grad_clip": 1.0, "gp_on": "image"})],
)
def test_training_steps_update_both_networks_and_log_finite_losses(tmp_path, precision, options):
    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=SIZE, **options)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _fit(model, tmp_path, precision=precision)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generator.image_encoder.") for k in changed)
    assert any(k.startswith("generator.up_blocks.") for k in changed)
    assert any(k.startswith("critic.") for k in changed)
    assert trainer.global_step == 4  # 2 batches x (critic + generator)
    logged = trainer.callback_metrics
    for name in ("d_loss", "g_loss", "l1", "mask", "gp", "wdist"):
        assert math.isfinite(logged[f"train/{name}"]), name
    for name in ("psnr", "ssim", "psnr_moving", "ssim_moving"):
        for key in (f"val/{name}", f"val/copy_{name}", f"val/{name}_gain"):
            assert math.isfinite(logged[key]), key
    if "ema_decay" in options:
        assert any(k.startswith("generator_ema.") for k in changed)


def test_n_critic_trains_the_generator_every_nth_batch(tmp_path):
    model = ForecastGAN(preset="tiny", image_size=SIZE, n_critic=2)
    trainer = _fit(model, tmp_path, limit_train_batches=2)
    assert trainer.global_step == 3  # critic, critic + generator


class PenaltyCalls(pl.Callback):
    """Which training batches computed the gradient penalty (a double backward)."""

    def __init__(self, model: ForecastGAN):
        self.batches: list[int] = []
        penalty = model.gradient_penalty

        def counted(*args, **kwargs):
            value = penalty(*args, **kwargs)
            if value.requires_grad:
                self.batches.append(model.trainer.fit_loop.total_batch_idx)
            return value

        model.gradient_penalty = counted


def test_lazy_gradient_penalty_runs_every_kth_batch_weighted_k(tmp_path):
    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=SIZE, gp_every=3)
    calls = PenaltyCalls(model)
    _fit(model, tmp_path, max_epochs=4, callbacks=[calls])
    assert calls.batches == [0, 3, 6]  # the count runs across epochs (2 batches each)
    torch.manual_seed(1)
    real, fake, structure = (torch.rand(2, 3, SIZE, SIZE) for _ in range(3))
    torch.manual_seed(2)
    lazy = model.gradient_penalty(real, fake, structure)  # outside fit: always computed
    model.hparams.gp_every = 1
    torch.manual_seed(2)
    assert torch.allclose(lazy, 3 * model.gradient_penalty(real, fake, structure))


def test_generator_lr_of_the_forecast_model_config_sets_the_generators_rate_only(tmp_path):
    import hydra

    def rates(*overrides):
        cfg = compose_config(
            "train.yaml",
            [
                "model.preset=tiny",
                f"model.image_size={SIZE}",
                "model.lr_schedule=constant",
                *overrides,
            ],
            run_dir=tmp_path,
        )
        model = hydra.utils.instantiate(cfg.model)
        return [[g["lr"] for g in opt.param_groups] for opt in model.configure_optimizers()]

    assert rates("model.lr=1e-4", "model.generator_lr=2e-3") == [[1e-4], [2e-3]]
    assert rates("model.lr=1e-4") == [[1e-4], [1e-4]]
    with pytest.raises(ConfigError, match="model.generator_lr"):
        ForecastGAN(preset="tiny", image_size=SIZE, generator_lr=0.0)


def test_cosine_schedule_falls_to_the_final_fraction_and_resumes(tmp_path):
    from frgan.models.gan import cosine_factor

    assert cosine_factor(0, 10, 0.1) == 1.0 and cosine_factor(10, 10, 0.1) == pytest.approx(0.1)
    assert cosine_factor(5, 10, 0.1) == pytest.approx(0.55)
    model = ForecastGAN(preset="tiny", image_size=SIZE, lr=1e-3, lr_schedule="cosine")
    trainer = _fit(model, tmp_path, limit_train_batches=2, max_epochs=2)
    critic_opt, generator_opt = (o.optimizer for o in model.optimizers())
    for optimizer in (critic_opt, generator_opt):  # 4 of 4 batches done
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1)
    assert trainer.callback_metrics["train/lr"] == pytest.approx(1e-3 * 0.1)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    state = torch.load(tmp_path / "mid.ckpt", weights_only=True)
    assert [s["last_epoch"] for s in state["lr_schedulers"]] == [4, 4]
    # trainer.max_steps counts both optimizers' steps: 6 steps are 3 batches, the whole fall
    model = ForecastGAN(preset="tiny", image_size=SIZE, lr=1e-3, lr_schedule="cosine")
    _fit(model, tmp_path, max_epochs=10, max_steps=6)
    assert model.optimizers()[0].optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("key", "value"),
    [("gp_every", 0), ("gp_every", 1.5), ("lr_schedule", "linear"), ("lr_final_fraction", 2.0)],
)
def test_bad_schedule_and_penalty_options_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        ForecastGAN(preset="tiny", image_size=SIZE, **{key: value})


def test_batches_must_have_the_contract_keys_and_size():
    model = ForecastGAN(preset="tiny", image_size=SIZE)
    with pytest.raises(ValueError, match=r"missing \['st'\]"):
        model.generator_inputs({k: torch.zeros(1, 3, SIZE, SIZE) for k in ("x0", "s0", "xt")})
    with pytest.raises(ValueError, match="set model.image_size"):
        model.generator_inputs({k: torch.zeros(1, 3, 32, 32) for k in ("x0", "s0", "xt", "st")})


def test_checkpoint_of_another_model_is_refused_clearly(tmp_path):
    model = ForecastGAN(preset="tiny", image_size=SIZE)
    trainer = _fit(model, tmp_path, limit_train_batches=1)
    path = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(path)
    model.check_checkpoint(path)  # the same architecture: fine

    with pytest.raises(
        ValueError, match=r"holds ForecastGAN\(preset='tiny'.*asks for ForecastGAN\(preset='small'"
    ):
        ForecastGAN(preset="small", image_size=SIZE).check_checkpoint(path)
    with pytest.raises(ValueError, match="ema=True"):
        ForecastGAN(preset="tiny", image_size=SIZE, ema_decay=0.99).check_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        model.check_checkpoint(tmp_path / "missing.ckpt")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, other)
    with pytest.raises(ValueError, match="not a FRGAN model checkpoint"):
        model.check_checkpoint(other)
    # loading through Lightning checks the same way
    with pytest.raises(ValueError, match="holds ForecastGAN"):
        ForecastGAN.load_from_checkpoint(path, preset="small")


class OneTake(Dataset):
    """Pairs of one take: the same x0 and s0, frame t as the target."""

    def __len__(self):
        return 6

    def __getitem__(self, t):
        first, frame = torch.Generator().manual_seed(0), torch.Generator().manual_seed(t)
        x0, s0 = (torch.rand(3, SIZE, SIZE, generator=first) * 2 - 1 for _ in range(2))
        xt, st = (torch.rand(3, SIZE, SIZE, generator=frame) * 2 - 1 for _ in range(2))
        return {"x0": x0, "s0": s0, "xt": xt, "st": st, "t": t}


def test_sample_media_writes_png_gif_mp4_and_logs_to_wandb(tmp_path, monkeypatch):
    import imageio.v3 as iio
    from pytorch_lightning.loggers import WandbLogger

    from frgan.callbacks import SampleMedia

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(save_dir=tmp_path, offline=True, project="frgan-test")
    # the take spans two batches
    model = ForecastGAN(preset="tiny", image_size=SIZE)
    _fit(
        model,
        tmp_path,
        pairs=OneTake(),
        limit_train_batches=1,
        limit_val_batches=2,
        logger=logger,
        callbacks=[SampleMedia(rows=2, max_frames=5)],
    )
    logger.experiment.finish()

    png = iio.imread(tmp_path / "samples" / "epoch_000.png")
    assert png.shape == (2 * SIZE, 4 * SIZE, 3)  # 2 rows of source | structure | generated | truth
    gif = iio.imread(tmp_path / "samples" / "epoch_000.gif", index=None)
    assert gif.shape[:3] == (5, SIZE, 4 * SIZE)  # max_frames frames of the take
    mp4 = iio.imread(tmp_path / "samples" / "epoch_000.mp4", index=None, plugin="pyav")
    assert mp4.shape[:3] == (5, SIZE, 4 * SIZE)
    media = list((tmp_path / "wandb").glob("offline-run-*/files/media/*/samples/*"))
    assert {p.suffix for p in media} == {".png", ".mp4"}


def test_sample_media_shows_the_whole_take_when_validation_reads_every_nth_frame(tmp_path):
    """A datamodule whose val loader skips frames (data.val_stride) offers its whole takes
    through sample_dataloader, and the sample video shows every frame."""
    import imageio.v3 as iio
    from torch.utils.data import DataLoader, Subset

    from frgan.callbacks import SampleMedia

    class StridedValidation(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(OneTake(), batch_size=4)

        def val_dataloader(self):
            return DataLoader(Subset(OneTake(), [0, 3]), batch_size=4)

        def sample_dataloader(self):
            return DataLoader(OneTake(), batch_size=4)

    trainer = quiet_trainer(
        tmp_path,
        limit_train_batches=1,
        limit_val_batches=1.0,
        callbacks=[SampleMedia(rows=2, max_frames=6, formats=["gif"])],
    )
    trainer.fit(ForecastGAN(preset="tiny", image_size=SIZE), datamodule=StridedValidation())
    gif = iio.imread(tmp_path / "samples" / "epoch_000.gif", index=None)
    assert gif.shape[0] == len(OneTake()) == 6


class PartlyRetargetedPairs(RandomPairs):
    """RandomPairs whose odd samples are flagged retargeted, with their xt scaled by `scale`."""

    def __init__(self, scale: float):
        self.scale = scale

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        retargeted = index % 2 == 1
        if retargeted:
            sample["xt"] = (sample["xt"] * self.scale).clamp(-1, 1)
        return {**sample, "retargeted": torch.tensor(retargeted)}


def test_retargeted_targets_never_reach_the_losses(tmp_path):
    # a retargeted sample's xt is not a picture of its st: changing it must change nothing
    def train_once(scale):
        torch.manual_seed(0)
        model = ForecastGAN(preset="tiny", image_size=SIZE)
        _fit(model, tmp_path, pairs=PartlyRetargetedPairs(scale))
        return model.state_dict()

    plain, scaled = train_once(1.0), train_once(0.1)
    assert all(torch.equal(plain[k], scaled[k]) for k in plain)


def test_load_model_from_a_file_or_run_folder_animates_clips(tmp_path):
    from frgan.models import load_model

    model = ForecastGAN(preset="tiny", image_size=SIZE, ema_decay=0.9)
    trainer = _fit(model, tmp_path, limit_train_batches=1)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    trainer.save_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")

    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded, ForecastGAN) and not loaded.training
    x0, s0 = torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2, 3, SIZE, SIZE)
    structures = torch.rand(2, 5, 3, SIZE, SIZE)
    clips = loaded.animate(x0, s0, structures, chunk=3)
    assert clips["forecast"].shape == (2, 5, 3, SIZE, SIZE)
    # frame by frame, the same as the sampling (EMA) generator on each pair
    one = loaded(x0[:1], s0[:1], structures[:1, 4]).frame
    assert torch.allclose(clips["forecast"][0, 4], one[0], atol=1e-5)

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "empty")
    with pytest.raises(ValueError, match="needs one of"):
        load_model(tmp_path / "run", expected=("RefineGAN",))


class PairsWithLandmarks(RandomPairs):
    def __init__(self, mouth_scale: float = 1.0):
        self.mouth_scale = mouth_scale

    def __getitem__(self, i):
        from frgan.render.face68 import mean_face68

        pair = super().__getitem__(i)
        pair["lt"] = torch.from_numpy(mean_face68(SIZE, SIZE)[:, :2]).float()
        return pair


def _landmark_batch(model: ForecastGAN, retargeted: list[bool] | None = None):
    """(pairs, a batch of 4 pairs with landmarks, the model's inputs, its generator's output)."""
    pairs = PairsWithLandmarks()
    batch = {
        k: torch.stack([pairs[i][k] for i in range(4)]) for k in ("x0", "s0", "xt", "st", "lt")
    }
    if retargeted is not None:
        batch["retargeted"] = torch.tensor(retargeted)
    inputs = model.generator_inputs(batch)
    return pairs, batch, inputs, model.run_generator(inputs, model.generator)


def test_region_weights_add_the_region_error_to_the_l1_term(tmp_path):
    from frgan.metrics.regions import region_masks

    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=SIZE, region_weights={"mouth": 2.0})
    pairs, batch, inputs, output = _landmark_batch(model)
    _, logged = model.generator_loss(inputs, output)
    error = (output.frame - batch["xt"]).abs()
    mouth = region_masks(batch["lt"], SIZE)["mouth"].expand_as(error)
    expected = (
        error.mean() + 2.0 * ((error * mouth).flatten(1).sum(1) / mouth.flatten(1).sum(1)).mean()
    )
    assert torch.allclose(logged["l1"], expected, rtol=1e-5)
    _fit(model, tmp_path, pairs=pairs)  # trains on batches that carry the landmarks

    with pytest.raises(ValueError, match="'lt'"):
        model.generator_inputs({k: v for k, v in batch.items() if k != "lt"})
    with pytest.raises(ConfigError, match="mouth, eyes_brows, face_rest"):
        ForecastGAN(preset="tiny", image_size=SIZE, region_weights={"lips": 1.0})
    with pytest.raises(ConfigError, match=">= 0"):
        ForecastGAN(preset="tiny", image_size=SIZE, region_weights={"mouth": -1.0})


def test_part_critics_train_on_crops_and_join_the_generator_loss_and_identity(tmp_path):
    from frgan.models.part_critic import part_crops

    torch.manual_seed(0)
    model = ForecastGAN(
        preset="tiny", image_size=SIZE, part_critics={"mouth": 2.0, "eyes_brows": 0}
    )
    assert set(model.part_critics) == {"mouth"}  # a weight of 0 is no critic
    assert model.identity()["part_critics"] == ["mouth"]
    pairs, batch, inputs, output = _landmark_batch(model)
    loss, logged = model.generator_loss(inputs, output)
    crops = [part_crops(x, batch["lt"], "mouth") for x in (output.frame, batch["st"])]
    expected = (
        -model.critic(output.frame, batch["st"]).mean()
        - 2.0 * model.part_critics["mouth"](*crops).mean()
        + model.hparams.l1_weight * logged["l1"]
        + model.hparams.mask_weight * logged["mask"]
    )
    assert torch.allclose(loss, expected, rtol=1e-5)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _fit(model, tmp_path, pairs=pairs)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("part_critics.mouth.") for k in changed)
    for name in ("wdist_mouth", "gp_mouth"):
        assert math.isfinite(trainer.callback_metrics[f"train/{name}"]), name

    plain = ForecastGAN(preset="tiny", image_size=SIZE)
    with pytest.raises(ValueError, match="part_critics"):
        plain.check_identity({"frgan_model": model.identity()}, "ckpt")
    with pytest.raises(ValueError, match="'lt'"):
        model.generator_inputs({k: v for k, v in batch.items() if k != "lt"})
    with pytest.raises(ConfigError, match="mouth, eyes_brows"):
        ForecastGAN(preset="tiny", image_size=SIZE, part_critics={"nose": 1.0})
    with pytest.raises(ConfigError, match="model.part_critics too"):
        ForecastGAN(preset="tiny", image_size=SIZE, part_feature_matching=1.0)


def test_part_feature_matching_pulls_generated_parts_towards_real_ones_only():
    from frgan.models.losses import gradient_difference
    from frgan.models.part_critic import feature_matching, part_crops

    torch.manual_seed(0)
    options = dict(preset="tiny", image_size=SIZE, part_critics={"mouth": 1.0})
    plain = ForecastGAN(**options)
    model = ForecastGAN(**options, part_feature_matching=10.0)
    model.load_state_dict(plain.state_dict())
    _, batch, inputs, output = _landmark_batch(model, retargeted=[False, False, False, True])
    plain_loss, _ = plain.generator_loss(inputs, output)
    loss, logged = model.generator_loss(inputs, output)
    real, fake, st = (
        part_crops(x, batch["lt"], "mouth") for x in (batch["xt"], output.frame, batch["st"])
    )
    per_sample = feature_matching(model.part_critics["mouth"], real, fake, st)
    assert torch.allclose(logged["matching_mouth"], per_sample[:3].mean())  # paired samples only
    assert torch.allclose(loss, plain_loss + 10.0 * per_sample[:3].mean(), rtol=1e-5)
    assert torch.equal(
        feature_matching(model.part_critics["mouth"], real, real, st), torch.zeros(4)
    )
    # another logged term beside the matching is added once, with its own weight
    with_gradients = ForecastGAN(**options, part_feature_matching=10.0, gradient_weight=5.0)
    with_gradients.load_state_dict(plain.state_dict())
    loss_g, logged_g = with_gradients.generator_loss(inputs, output)
    gradients = gradient_difference(output.frame, batch["xt"])[:3].mean()
    assert torch.allclose(logged_g["gradient_difference"], gradients)
    assert torch.allclose(loss_g, loss + 5.0 * gradients, rtol=1e-5)


def test_part_readers_learn_from_real_crops_and_charge_the_generator_for_misread_ones(tmp_path):
    from frgan.models.part_critic import part_crops, part_points
    from frgan.models.part_reader import reading_error

    torch.manual_seed(0)
    model = ForecastGAN(preset="tiny", image_size=SIZE, part_readers={"mouth": 5.0})
    assert set(model.part_readers) == {"mouth"}
    assert model.identity()["part_readers"] == ["mouth"]
    assert {id(p) for p in model.part_readers.parameters()} <= {
        id(p) for p in model.critic_parameters()
    }  # trained by the critics' optimizer, not the generator's
    pairs, batch, inputs, output = _landmark_batch(model, retargeted=[False, False, False, True])
    plain = ForecastGAN(preset="tiny", image_size=SIZE)
    plain.load_state_dict(model.state_dict(), strict=False)
    plain_loss, _ = plain.generator_loss(inputs, output)
    loss, logged = model.generator_loss(inputs, output)
    points = part_points(batch["lt"], "mouth")
    reader = model.part_readers["mouth"]
    misread = reading_error(reader, part_crops(output.frame, batch["lt"], "mouth"), points)
    assert torch.allclose(logged["misread_mouth"], misread[:3].mean())  # paired samples only
    assert torch.allclose(loss, plain_loss + 5.0 * misread[:3].mean(), rtol=1e-5)

    critic_loss, critic_logged = model.critic_loss(inputs, output)
    read = reading_error(reader, part_crops(batch["xt"], batch["lt"], "mouth"), points)
    assert torch.allclose(critic_logged["reader_mouth"], read[:3].mean())
    model.zero_grad()
    critic_loss.backward()
    assert reader.to_points.weight.grad.abs().sum() > 0

    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _fit(model, tmp_path, pairs=pairs)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("part_readers.mouth.") for k in changed)
    assert math.isfinite(trainer.callback_metrics["train/reader_mouth"])
    with pytest.raises(ValueError, match="part_readers"):
        plain.check_identity({"frgan_model": model.identity()}, "ckpt")
    with pytest.raises(ValueError, match="model.part_readers"):
        model.generator_inputs({k: v for k, v in batch.items() if k != "lt"})
    with pytest.raises(ConfigError, match="mouth, eyes_brows"):
        ForecastGAN(preset="tiny", image_size=SIZE, part_readers={"nose": 1.0})
