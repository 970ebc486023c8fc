"""Cluster configs (SLURM through submitit, torchrun), requeue resumption, the GPU check script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, compose_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from frgan.errors import ConfigError
from frgan.utils.checkpoint_io import resolve_ckpt_path
from frgan.utils.config_check import check_train_config

REPO = Path(__file__).resolve().parents[1]


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train.yaml", list(overrides), return_hydra_config=True)


def test_slurm_launcher_config_composes():
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher", reason="the `slurm` extra is not installed"
    )
    cfg = _compose(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.nodes=2",
        "trainer=ddp",
        "trainer.num_nodes=2",
    )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert launcher.partition == "gpu" and launcher.nodes == cfg.trainer.num_nodes == 2
    assert launcher.tasks_per_node == launcher.gpus_per_node, "one process per GPU"
    assert launcher.max_num_timeout > 0, "preempted or timed-out jobs are requeued"


def test_torchrun_trainer_reads_the_process_layout(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    cfg = _compose("trainer=torchrun")
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (4, 2)
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.delenv("GROUP_WORLD_SIZE")
    alone = _compose("trainer=torchrun").trainer
    assert (alone.devices, alone.num_nodes) == (1, 1), "outside torchrun: one process"


def test_torchrun_on_cpu_nodes_needs_sync_batchnorm_off(tmp_path):
    # torch synchronises BatchNorm on CUDA only: the run would fail in its first step
    cpu_nodes = ["trainer=torchrun", "trainer.accelerator=cpu"]
    with pytest.raises(ConfigError, match=r"^trainer\.sync_batchnorm=true needs GPUs.*=false$"):
        check_train_config(compose_config("train.yaml", cpu_nodes, run_dir=tmp_path))
    cfg = compose_config(
        "train.yaml", [*cpu_nodes, "trainer.sync_batchnorm=false"], run_dir=tmp_path
    )
    check_train_config(cfg)


def test_ckpt_path_auto_resumes_only_from_its_own_folder(tmp_path):
    runs = tmp_path / "runs"
    other = runs / "earlier" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    requeued = runs / "slurm_123"
    assert resolve_ckpt_path("auto", requeued, runs) is None, "first start: fresh, not another run"
    own = requeued / "checkpoints" / "last.ckpt"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"x")
    assert resolve_ckpt_path("auto", requeued, runs) == str(own)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without a GPU")
def test_gpu_check_fails_clearly_without_a_gpu(tmp_path):
    import sys

    result = subprocess.run(
        ["bash", "scripts/gpu_check.sh"],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: no CUDA GPU visible to torch"), result.stderr
    assert not (tmp_path / "out").exists(), "nothing is started or written"
