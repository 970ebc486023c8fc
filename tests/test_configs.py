"""Every config group option composes, and the named recipes say what they promise."""

from __future__ import annotations

import hydra
import pytest
from conftest import CONF_DIR, compose_config
from omegaconf import OmegaConf
from pytorch_lightning import Trainer

from frgan.errors import ConfigError


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("trainer", _options("trainer"))
def test_every_trainer_composes(trainer, tmp_path):
    cfg = compose_config("train.yaml", [f"trainer={trainer}"], run_dir=tmp_path)
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if cfg.trainer.accelerator == "cpu":
        assert isinstance(hydra.utils.instantiate(cfg.trainer), Trainer)


@pytest.mark.parametrize("logger", _options("logger"))
def test_every_logger_composes(logger, tmp_path):
    cfg = compose_config("train.yaml", [f"logger={logger}"], run_dir=tmp_path)
    for name, entry in (cfg.logger or {}).items():
        assert "_target_" in entry, name


@pytest.mark.parametrize("debug", _options("debug"))
def test_every_debug_mode_composes(debug, tmp_path):
    cfg = compose_config("train.yaml", [f"debug={debug}"], run_dir=tmp_path)
    assert cfg.task_name == "debug"
    assert cfg.trainer.accelerator == "cpu"


def test_default_run_is_the_small_model_on_cpu_with_offline_wandb(tmp_path):
    cfg = compose_config("train.yaml", [], run_dir=tmp_path)
    assert cfg.data.name == "synthetic" and cfg.model.preset == "small"
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.logger.wandb.offline is True and "csv" in cfg.logger
    callbacks = OmegaConf.to_container(cfg.callbacks, resolve=True)
    assert callbacks["model_checkpoint"]["monitor"] == "val/psnr_moving"
    assert callbacks["model_checkpoint"]["dirpath"] == f"{tmp_path}/checkpoints"


def test_mug64_paper_is_the_papers_recipe(tmp_path):
    cfg = compose_config("train.yaml", ["experiment=mug64_paper"], run_dir=tmp_path)
    assert cfg.data.name == "mug" and cfg.data.image_size == 64 and cfg.data.batch_size == 64
    assert (
        cfg.data.prepare.split_method == "paper" and cfg.data.prepare.landmarks == "face_alignment"
    )
    assert cfg.model.preset == "paper" and cfg.model.image_size == 64
    assert cfg.model.lr == 1e-4 and list(cfg.model.betas) == [0.0, 0.9] and cfg.model.n_critic == 1
    assert (cfg.model.gp_weight, cfg.model.l1_weight, cfg.model.mask_weight) == (10.0, 3.0, 0.05)
    assert (cfg.model.gp_every, cfg.model.lr_schedule, cfg.model.ema_decay) == (1, "constant", None)
    assert (cfg.model.residual, cfg.model.warp) == ("paint", False), "the released generator"
    assert cfg.trainer.max_epochs == 100 and cfg.trainer.accelerator == "gpu"
    assert cfg.trainer.limit_train_batches == 1.0, "full epochs, not the CPU default's short ones"


def test_cpu_recipes_share_the_default_losses_and_differ_in_length(tmp_path):
    default = compose_config("train.yaml", [], run_dir=tmp_path)
    long = compose_config("train.yaml", ["experiment=cpu_long"], run_dir=tmp_path)
    for cfg in (default, long):
        assert (cfg.model.l1_weight, cfg.model.gp_every, cfg.model.lr_schedule) == (
            300.0,
            4,
            "cosine",
        )
        assert (cfg.model.residual, cfg.model.warp) == ("edit", True)
        assert cfg.data.name == "synthetic" and cfg.trainer.accelerator == "cpu"
        assert cfg.trainer.limit_train_batches == 250
    assert (default.trainer.max_epochs, long.trainer.max_epochs) == (3, 6)
    assert long.task_name == "cpu_long"


def test_the_default_has_the_expression_levers_and_the_papers_recipe_has_none(tmp_path):
    for overrides in ([], ["experiment=cpu_long"]):
        cfg = compose_config("train.yaml", overrides, run_dir=tmp_path)
        assert cfg.data.structure == "normal_parts" and cfg.model.landmark_warp is True
        assert cfg.model.mouth_interior is True
        assert dict(cfg.model.region_weights) == {"mouth": 0.3, "eyes_brows": 0.3}
    paper = compose_config("train.yaml", ["experiment=mug64_paper"], run_dir=tmp_path)
    assert (paper.data.structure, paper.model.landmark_warp) == ("normal", False)
    assert paper.model.mouth_interior is False
    assert paper.model.region_weights is None


@pytest.mark.parametrize("logger", ["wandb", "csv", "tensorboard"])
def test_every_logger_builds(logger, tmp_path):
    from frgan.utils.instantiate import instantiate_loggers

    cfg = compose_config("train.yaml", [f"logger={logger}"], run_dir=tmp_path)
    (built,) = instantiate_loggers(cfg.logger)
    assert logger in type(built).__name__.lower()


def test_model_and_data_stage_mismatch_is_one_error_naming_both_keys(train_config):
    from frgan.train import train

    with pytest.raises(ConfigError, match=r"data.stage=refine.*model|model.*data.stage=refine"):
        train(train_config("data.stage=refine"))
