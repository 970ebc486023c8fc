"""Train a stage of FRGAN.

python -m frgan.train                              # synthetic data, small model, CPU
python -m frgan.train data=mug experiment=mug64_paper trainer=ddp trainer.devices=4
python -m frgan.train ckpt_path=last               # resume the newest run
python -m frgan.train init_ckpt=<run or .ckpt>     # fine-tune: start from a model's weights
python -m frgan.train experiment=two_stage         # forecast, then refine (frgan/two_stage.py)
"""

from __future__ import annotations

import logging
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from frgan.errors import ConfigError
from frgan.sweeps import run_job
from frgan.two_stage import run_two_stage
from frgan.utils.checkpoint_io import find_checkpoint, logged_step, resolve_ckpt_path
from frgan.utils.cli import report_user_errors, run_hydra_app
from frgan.utils.config import print_config_tree
from frgan.utils.config_check import check_train_config
from frgan.utils.files import exclusive_folder
from frgan.utils.instantiate import instantiate_callbacks, instantiate_loggers
from frgan.utils.loggers import (
    ResumableCSVLogger,
    finish_loggers,
    record_wandb_run,
    resume_wandb_run,
)
from frgan.utils.ranks import is_global_zero

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the model on the datamodule, then test the best checkpoint.

    Returns the metrics (validation and test) and the objects that were built. The run folder
    is held for the whole run: a second run started in it meanwhile is refused.
    """
    run_dir = Path(cfg.paths.output_dir)
    # only the launching process holds it: the processes DDP starts for ranks > 0 run this too
    holding = exclusive_folder(run_dir, "run", "set hydra.run.dir to another folder")
    with holding if is_global_zero() else nullcontext():
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, float], dict[str, Any]]:
    # The periodic checkpoint stores the weights after the step it counts, which is what resuming
    # needs; Lightning warns about exactly that under manual optimization.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    if cfg.get("extras", {}).get("print_config") and is_global_zero():
        print_config_tree(cfg, save_to=run_dir / "config_tree.log")
    check_train_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    check_model_matches_data(cfg)

    log.info("data: %s", cfg.data._target_)
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("model: %s", cfg.model._target_)
    model: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    ckpt_path = resolve_ckpt_path(
        cfg.get("ckpt_path"), run_dir, Path(cfg.paths.log_dir) / cfg.task_name
    )
    resumed_step = None
    if ckpt_path is not None:
        checkpoint = model.check_checkpoint(ckpt_path, verify=cfg.get("ckpt_verify", True))
        resumed_step = logged_step(checkpoint)
        del checkpoint
        log.info("resuming from %s", ckpt_path)
        resume_wandb_run(cfg.get("logger"), [run_dir, Path(ckpt_path).parent.parent])
    if cfg.get("init_ckpt") is not None:
        if ckpt_path is None:
            start_from_weights(model, cfg.init_ckpt, verify=cfg.get("ckpt_verify", True))
        else:  # a fine-tune that was stopped (or requeued with ckpt_path=auto) goes on from there
            log.info("resuming, so init_ckpt=%s is not loaded", cfg.init_ckpt)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    if resumed_step is not None and is_global_zero():
        # rows a killed run logged after its checkpoint are logged again by this run
        for logger in loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.forget_rows_after(resumed_step)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )

    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)
    record_wandb_run(trainer.loggers, run_dir)

    metrics: dict[str, float] = {}
    if cfg.get("train"):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update(_as_floats(trainer.callback_metrics))

    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint was saved; testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(_as_floats(trainer.callback_metrics))

    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
    return metrics, objects


def start_from_weights(model: pl.LightningModule, path: str, verify: bool = True) -> None:
    """A fine-tune: the weights of a checkpoint (file or run folder) of the same model, EMA
    included, with this run's losses, data and fresh optimizers, schedule and epoch count."""
    file = find_checkpoint(path)
    checkpoint = model.check_checkpoint(file, verify=verify)
    model.load_state_dict(checkpoint["state_dict"])
    log.info("starting from the weights of %s", file)


def check_model_matches_data(cfg: DictConfig) -> None:
    """A stage trains on its own kind of batch: refuse a model/data-stage mismatch up front."""
    model_class = hydra.utils.get_class(cfg.model._target_)
    wanted = getattr(model_class, "data_stage", None)
    stage = cfg.data.get("stage")
    if wanted is not None and stage != wanted:
        raise ConfigError(
            f"model._target_={cfg.model._target_} trains on data.stage={wanted}, but "
            f"data.stage={stage}; drop the data.stage override (choosing the model sets it) "
            "or choose the model of that stage"
        )


def _as_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def resume_hint(cfg: DictConfig) -> str:
    if cfg.get("two_stage"):
        return "run the same command again to resume (a finished stage is kept)"
    return "resume with ckpt_path=last"


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
@report_user_errors(stop_hint=resume_hint)
def main(cfg: DictConfig) -> float | None:
    # one job of a sweep (-m) records its result or its error, and the sweep goes on
    return run_job(cfg, fit_and_report)


def fit_and_report(cfg: DictConfig) -> dict[str, float]:
    try:
        if cfg.get("two_stage"):
            overrides = list(HydraConfig.get().overrides.task)
            metrics, objects = run_two_stage(cfg, overrides, train)
        else:
            metrics, objects = train(cfg)
    finally:
        finish_loggers()
    if "trainer" not in objects or objects["trainer"].is_global_zero:
        log.info("run folder: %s", Path(cfg.paths.output_dir).resolve())
        print(f"Run folder: {Path(cfg.paths.output_dir).resolve()}")
    return metrics


if __name__ == "__main__":
    run_hydra_app(main)
