"""Shared fixtures: Hydra configs composed like the entry points compose them, and one tiny
prepared synthetic dataset reused by every test that trains."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A dataset small enough to generate and prepare in seconds: 4 subjects split 2/1/1.
TINY_DATA = [
    "data.synth.subjects=4",
    "data.synth.takes_per_expression=1",
    "data.synth.image_size=64",
    "data.synth.min_frames=5",
    "data.synth.max_frames=7",
    "data.synth.workers=0",
    "data.prepare.split_fractions={train: 0.5, val: 0.25, test: 0.25}",
    "data.prepare.progress=false",
    "data.batch_size=4",
    "data.num_workers=0",
]
# A model and a run small enough for seconds on a CPU.
TINY_RUN = [
    "model.preset=tiny",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=1",
    "logger=csv",
    "extras.print_config=false",
]


def compose_config(
    config_name: str, overrides: list[str], run_dir: Path | None = None
) -> DictConfig:
    """Compose `conf/<config_name>` with overrides; point the run folder at `run_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    if run_dir is not None:
        HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if run_dir is not None:
            cfg.paths.output_dir = str(run_dir)
            cfg.paths.log_dir = str(run_dir.parent)
        del cfg["hydra"]  # a task function never sees the `hydra` node
    return cfg


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """paths.data_dir holding the tiny synthetic set, generated and prepared once per session."""
    import hydra

    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_config("train.yaml", [f"paths.data_dir={data_dir}", *TINY_DATA])
    hydra.utils.instantiate(cfg.data).prepare_data()
    return data_dir


@pytest.fixture(scope="module")
def finished_run(tiny_data_dir, tmp_path_factory) -> Path:
    """A tiny forecast run folder, trained to its end: checkpoints/last.ckpt beside the
    .hydra/config.yaml it was composed from."""
    from frgan.train import train

    run = tmp_path_factory.mktemp("finished")
    quiet = ["test=false", "trainer.limit_val_batches=0", "callbacks=none", "logger=none"]
    cfg = compose_config(
        "train.yaml", [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, *quiet], run
    )
    _, objects = train(cfg)
    objects["trainer"].save_checkpoint(run / "checkpoints" / "last.ckpt")
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


@pytest.fixture
def train_config(tiny_data_dir, tmp_path):
    """A function composing conf/train.yaml for a tiny run on the tiny set in tmp_path/run."""

    def make(*overrides: str) -> DictConfig:
        base = [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN]
        return compose_config("train.yaml", [*base, *overrides], run_dir=tmp_path / "run")

    return make


def quiet_trainer(root: Path, **trainer_options):
    """A quiet one-CPU trainer: 2 train batches, 1 validation batch, no logger, checkpoints or
    bars; `trainer_options` override."""
    import pytorch_lightning as pl

    options = dict(
        default_root_dir=root,
        accelerator="cpu",
        devices=1,
        precision="32-true",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return pl.Trainer(**{**options, **trainer_options})


def fit_quietly(model, root: Path, dataset, batch_size: int = 4, **trainer_options):
    """Fit `model` on `dataset` (train and validation) with a quiet_trainer."""
    from torch.utils.data import DataLoader

    trainer = quiet_trainer(root, **trainer_options)
    loader = DataLoader(dataset, batch_size=batch_size)
    trainer.fit(model, loader, loader)
    return trainer


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (registered under its name: dataclasses look it up)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def wait_for(
    path: Path, *processes: subprocess.Popen, timeout: float = 300.0, poll: float = 0.05
) -> None:
    """Until `path` exists; fails when one of the processes ends first or on the timeout."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        ended = [p.returncode for p in processes if p.poll() is not None]
        assert not ended, f"the command ended (status {ended}) before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(poll)


def pytest_sessionfinish(session, exitstatus):
    """DataLoader workers a test left running (persistent workers of a loader still referenced)
    ignore SIGTERM, which is all multiprocessing sends them at exit before it waits for them:
    the test process would wait forever after the last test. End them as the entry points do."""
    from frgan.utils.stops import end_daemon_workers

    end_daemon_workers()
