"""Sweeps: job results, the summary table, wandb grouping, multirun and Optuna end to end."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from conftest import CONF_DIR, TINY_DATA, TINY_RUN
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from frgan.errors import ConfigError
from frgan.sweeps import (
    RESULT_FILE,
    SweepSummary,
    read_results,
    run_job,
    sqlite_storage_path,
    summary_tables,
    write_summary,
)

REPO = Path(__file__).resolve().parents[1]


def _job(sweep: Path, folder: str, overrides: list[str], result: dict | None) -> None:
    job = sweep / folder
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    if result is not None:
        (job / RESULT_FILE).write_text(json.dumps({"overrides": overrides, **result}))


def _ok(value: float, **metrics: float) -> dict:
    return {
        "status": "ok",
        "error": None,
        "optimized_metric": "val/psnr_moving",
        "optimized_mode": "max",
        "value": value,
        "metrics": {"val/psnr_moving": value, **metrics},
    }


def test_summary_ranks_best_first_and_lists_failures(tmp_path):
    common = "trainer.max_epochs=1"
    _job(tmp_path, "0", [common, "model.lr=1e-4"], _ok(17.0, **{"test/psnr_moving": 16.5}))
    _job(tmp_path, "1", [common, "model.lr=4e-4"], _ok(18.5, **{"test/psnr_moving": 18.0}))
    failed = {
        "status": "failed",
        "error": "ConfigError: model.preset='huge' is unknown",
        "value": None,
        "metrics": {},
    }
    _job(tmp_path, "2", [common, "model.preset=huge"], failed)
    _job(tmp_path, "3", [common, "model.lr=1"], None)  # killed: no result file

    markdown = write_summary(tmp_path)
    assert markdown == (tmp_path / "summary.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[0].split(" | ")[4:] == ["val/psnr_moving", "test/psnr_moving |"]
    order = [row.split(" | ")[2] for row in rows[1:]]
    assert order == ["model.lr=4e-4", "model.lr=1e-4", "model.preset=huge", "model.lr=1"]
    assert rows[1].startswith("| 1 | 1 |") and "18.5000" in rows[1]
    assert rows[3].startswith("| - | 2 |") and "failed" in rows[3]
    assert f"Common to every job: `{common}`" in markdown
    assert "job 2 (model.preset=huge): ConfigError: model.preset='huge' is unknown" in markdown
    assert "job 3 (model.lr=1): no sweep_result.json" in markdown

    table = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["job"] for r in table] == ["1", "0", "2", "3"]
    assert table[0]["val/psnr_moving"] == "18.5" and table[0]["overrides"].startswith(common)
    assert table[2]["error"].startswith("ConfigError") and table[3]["status"] == "no result"


def test_summary_shows_the_swept_keys_while_the_sweep_runs(tmp_path):
    task = ["trainer.max_epochs=1", "model.lr=1e-4,4e-4", "model.preset=tiny", "seed=range(2)"]
    (tmp_path / "multirun.yaml").write_text(
        OmegaConf.to_yaml({"hydra": {"overrides": {"task": task}}})
    )
    fixed = ["trainer.max_epochs=1", "model.preset=tiny"]
    _job(tmp_path, "0", [fixed[0], "model.lr=1e-4", fixed[1], "seed=0"], _ok(17.0))
    markdown = write_summary(tmp_path)  # one job done, three to come
    assert "| 1 | 0 | model.lr=1e-4 seed=0 | ok |" in markdown
    assert "Common to every job: `model.preset=tiny trainer.max_epochs=1`" in markdown

    # Optuna: the sweeper's params vary, less the keys fixed on the command line
    sweeper = {"params": {"model.lr": "interval(1e-5, 1e-3)", "model.preset": "choice(a, b)"}}
    (tmp_path / "multirun.yaml").write_text(
        OmegaConf.to_yaml({"hydra": {"overrides": {"task": fixed}, "sweeper": sweeper}})
    )
    assert "| 1 | 0 | model.lr=1e-4 | ok |" in write_summary(tmp_path)


def test_summary_of_a_minimized_metric_ranks_lowest_first(tmp_path):
    for folder, value in (("0", 0.3), ("1", 0.1)):
        _job(tmp_path, folder, [f"seed={folder}"], {**_ok(value), "optimized_mode": "min"})
    markdown, _ = summary_tables(read_results(tmp_path))
    assert markdown.index("seed=1") < markdown.index("seed=0")


@pytest.fixture
def multirun_job(tmp_path, tiny_data_dir):
    """A function composing a config as Hydra hands it to job `num` of a sweep."""

    def make(num: int, *overrides: str):
        GlobalHydra.instance().clear()
        base = [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train.yaml", [*base, *overrides], return_hydra_config=True)
        job_dir = tmp_path / "sweep" / str(num)
        job_dir.mkdir(parents=True)
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.sweep.dir = str(tmp_path / "sweep")
            cfg.hydra.runtime.output_dir = str(job_dir)
            cfg.hydra.job.num = num
            cfg.hydra.overrides.task = list(overrides)
            cfg.paths.output_dir = str(job_dir)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg, job_dir

    yield make
    HydraConfig.instance().cfg = None


def _result(job_dir: Path) -> dict:
    return json.loads((job_dir / RESULT_FILE).read_text())


def test_a_failing_job_is_recorded_and_returns_none(multirun_job):
    def out_of_memory(cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def bad_value(cfg):
        raise InstantiationException("Error in call to target") from ConfigError(
            "model.preset='huge' is unknown; valid presets: paper, small, tiny."
        )

    def spawned_process_failed(cfg):
        raise torch.multiprocessing.ProcessRaisedException(
            "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call "
            'last):\n  File "x.py", line 1, in f\nRuntimeError: NCCL timeout\n',
            error_index=1,
            error_pid=123,
        )

    cases = [
        (out_of_memory, "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        (spawned_process_failed, "RuntimeError: NCCL timeout"),
        (bad_value, "ConfigError: model.preset='huge' is unknown"),
        (lambda cfg: {"val/psnr_moving": float("nan")}, "val/psnr_moving is nan"),
        (lambda cfg: {"train/d_loss": 1.0}, "val/psnr_moving is None"),
    ]
    for num, (fit, expected) in enumerate(cases):
        cfg, job_dir = multirun_job(num, f"seed={num}")
        assert run_job(cfg, fit) is None
        result = _result(job_dir)
        assert result["status"] == "failed" and expected in result["error"], result["error"]
        assert result["overrides"] == [f"seed={num}"]
    assert "OutOfMemoryError" in (job_dir.parent / "0" / "sweep_error.txt").read_text()

    cfg, job_dir = multirun_job(9, "model.lr=1e-4")
    assert run_job(cfg, lambda cfg: {"val/psnr_moving": 18.0, "test/psnr_moving": 17.0}) == 18.0
    assert _result(job_dir)["status"] == "ok" and _result(job_dir)["value"] == 18.0


def test_wandb_runs_of_a_sweep_share_a_group_and_carry_their_overrides(multirun_job):
    cfg, _ = multirun_job(3, "logger=wandb", "model.lr=1e-4")
    seen = {}

    def fit(cfg):
        logger = hydra.utils.instantiate(cfg.logger.wandb)
        seen.update(logger._wandb_init)
        return {"val/psnr_moving": 18.0}

    run_job(cfg, fit)
    assert seen["group"] == "train-sweep"
    assert seen["name"] == "3: logger=wandb model.lr=1e-4"
    assert {"logger=wandb", "model.lr=1e-4"} <= set(seen["tags"])
    assert seen["config"] == {
        "sweep": {"group": "train-sweep", "job": 3, "overrides": ["logger=wandb", "model.lr=1e-4"]}
    }


def test_a_single_run_lets_errors_through(train_config):
    cfg = train_config()

    def broken(cfg):
        raise ConfigError("bad value")

    with pytest.raises(ConfigError):
        run_job(cfg, broken)
    assert run_job(cfg, lambda cfg: {"val/psnr_moving": 17.0}) == 17.0


def _compose_with_hydra(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train.yaml", list(overrides), return_hydra_config=True)


def test_forecast_optuna_search_composes(tmp_path):
    cfg = _compose_with_hydra("hparams_search=forecast_optuna", f"paths.log_dir={tmp_path}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.mode == RunMode.MULTIRUN
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.direction == "maximize" and cfg.optimized_mode == "max"
    assert sweeper.max_failure_rate == 1.0
    assert sqlite_storage_path(sweeper.storage) == tmp_path / "train" / "optuna" / "forecast.db"
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"{key} is not a config key"
    assert cfg.optimized_metric == cfg.model.monitor

    # the study's folder is made before Optuna opens the database
    SweepSummary().on_multirun_start(cfg)
    assert (tmp_path / "train" / "optuna").is_dir()


def test_refine_optuna_search_composes(tmp_path):
    cfg = _compose_with_hydra("hparams_search=refine_optuna", f"paths.log_dir={tmp_path}")
    assert cfg.data.stage == "refine"
    assert sqlite_storage_path(cfg.hydra.sweeper.storage).name == "refine.db"
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"{key} is not a RefineGAN config key"
    assert cfg.hydra.sweeper.direction == {"max": "maximize", "min": "minimize"}[cfg.optimized_mode]


def _cli(data_dir: Path, *overrides: str, multirun: bool = False) -> list[str]:
    return [
        sys.executable,
        "-m",
        "frgan.train",
        *(["-m"] if multirun else []),
        f"paths.data_dir={data_dir}",
        *TINY_DATA,
        *TINY_RUN,
        "callbacks.sample_media.formats=[png]",
        *overrides,
    ]


def _run(command: list[str], log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    with open(log, "w") as out:  # not a terminal: progress comes as plain lines
        result = subprocess.run(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900
        )
    return result


@pytest.mark.slow
def test_multirun_with_ddp_sim_goes_on_past_a_failing_job(tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    log = tmp_path / "sweep.log"
    result = _run(
        _cli(
            tiny_data_dir,
            f"hydra.sweep.dir={sweep}",
            "trainer=ddp_sim",
            "test=false",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "model.preset=huge,tiny",  # the first job fails, the second still runs
            multirun=True,
        ),
        log,
    )
    output = log.read_text()
    assert result.returncode == 0, output[-3000:]
    records = {r["folder"]: r for r in read_results(sweep)}
    assert records["0"]["status"] == "failed" and "model.preset" in records["0"]["error"]
    assert records["1"]["status"] == "ok" and records["1"]["value"] is not None
    markdown = (sweep / "summary.md").read_text()
    assert markdown.splitlines()[2].startswith("| 1 | 1 | model.preset=tiny | ok |")
    assert "Sweep summary" in output and "| - | 0 | model.preset=huge | failed |" in output
    assert "train epoch 1/1 step 2/2 (100%)" in output and "samples/s" in output
    assert "\x1b[" not in output, "no live bar (terminal escape codes) in a log file"


@pytest.mark.slow
def test_optuna_study_runs_three_trials_and_resumes(tiny_data_dir, tmp_path):
    quick = [
        "hparams_search=forecast_optuna",
        f"paths.log_dir={tmp_path / 'outputs'}",
        "test=false",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "model.preset=tiny",  # fixed on the command line: out of the search space
    ]
    first = _run(_cli(tiny_data_dir, *quick, "hydra.sweeper.n_trials=2"), tmp_path / "1.log")
    assert first.returncode == 0, (tmp_path / "1.log").read_text()[-3000:]
    # running the command again continues the study stored in the sqlite database
    again = _run(_cli(tiny_data_dir, *quick, "hydra.sweeper.n_trials=1"), tmp_path / "2.log")
    assert again.returncode == 0, (tmp_path / "2.log").read_text()[-3000:]

    database = tmp_path / "outputs" / "train" / "optuna" / "forecast.db"
    with sqlite3.connect(database) as db:
        states = [row[0] for row in db.execute("select state from trials order by number")]
    assert states == ["COMPLETE"] * 3
    sweeps = sorted((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 2, "one sweep folder per run of the command"
    trials = [r for s in sweeps for r in read_results(s)]
    assert len(trials) == 3 and all(r["status"] == "ok" for r in trials)
    assert all(any(o.startswith("model.lr=") for o in r["overrides"]) for r in trials)
    assert (sweeps[-1] / "summary.md").is_file() and (sweeps[-1] / "summary.csv").is_file()
