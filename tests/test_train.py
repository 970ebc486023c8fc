"""frgan.train end to end on the tiny synthetic set: fit, test, resume, kill, DDP, errors."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, load_script, wait_for
from pytorch_lightning import Callback

import frgan.train as train_module
from frgan.models import Generator
from frgan.train import train
from frgan.utils.instantiate import instantiate_callbacks

REPO = Path(__file__).resolve().parents[1]


def test_fit_and_test_write_checkpoints_logs_and_metrics(train_config, tmp_path):
    cfg = train_config("trainer.max_epochs=2")
    metrics, objects = train(cfg)

    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    best = objects["trainer"].checkpoint_callback.best_model_path
    assert best and Path(best).is_file(), "a best checkpoint by the validation metric"
    assert (run / "csv" / "metrics.csv").is_file()
    for name in ("val/psnr_moving", "val/copy_psnr_moving", "val/ssim", "val/copy_ssim"):
        assert name in metrics, f"{name} missing from {sorted(metrics)}"
    assert any(k.startswith("test/") for k in metrics), "the best checkpoint was tested"
    assert objects["trainer"].current_epoch == 2
    # where the time went (frgan.callbacks.RunTimer): every batch counted, shares add up
    timing = json.loads((run / "timing.json").read_text())
    assert timing["batches"] == 2 * 3
    assert set(timing["share"]) == {"steps", "data", "validation", "other"}
    assert sum(timing["share"].values()) == pytest.approx(1.0)
    assert timing["seconds"]["steps"] > 0 and timing["seconds"]["validation"] > 0


class RecordRestoredState(Callback):
    """Captures the step and optimizer states right after a checkpoint is restored."""

    def on_train_start(self, trainer, pl_module):
        self.global_step = trainer.global_step
        # deep copies: the optimizers update their state tensors in place while training goes on
        self.optimizer_states = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]


def _assert_same_state(restored, saved):
    assert restored["param_groups"] == saved["param_groups"]
    assert restored["state"].keys() == saved["state"].keys()
    for key, values in saved["state"].items():
        for name, value in values.items():
            assert torch.equal(
                torch.as_tensor(restored["state"][key][name]), torch.as_tensor(value)
            ), name


def test_resume_from_last_restores_step_and_optimizers(train_config, monkeypatch):
    first = train_config("test=false")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)

    resumed = train_config("test=false", "trainer.max_epochs=2", "ckpt_path=last")
    recorder = RecordRestoredState()
    monkeypatch.setattr(
        train_module, "instantiate_callbacks", lambda cfg: [*instantiate_callbacks(cfg), recorder]
    )
    _, objects = train(resumed)

    assert recorder.global_step == saved["global_step"] > 0
    for restored, state in zip(recorder.optimizer_states, saved["optimizer_states"], strict=True):
        _assert_same_state(restored, state)
    assert objects["trainer"].current_epoch == 2
    assert objects["trainer"].global_step > saved["global_step"]


def test_checkpoint_of_another_model_is_refused(train_config, tmp_path):
    other = tmp_path / "other.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": {}, "pytorch-lightning_version": "2.6.6"}, other
    )
    with pytest.raises(ValueError, match="checkpoint"):
        train(train_config(f"ckpt_path={other}"))


def _trained_checkpoint(train_config, tmp_path) -> Path:
    """A tiny run's last checkpoint, copied out of its run folder, which is then removed."""
    train(train_config("test=false"))
    source = tmp_path / "trained.ckpt"
    shutil.copy(tmp_path / "run" / "checkpoints" / "last.ckpt", source)
    shutil.rmtree(tmp_path / "run")
    return source


def test_init_ckpt_starts_a_new_run_from_the_checkpoints_weights(train_config, tmp_path):
    source = _trained_checkpoint(train_config, tmp_path)
    saved = torch.load(source, map_location="cpu", weights_only=True)

    _, objects = train(train_config(f"init_ckpt={source}", "train=false", "test=false"))
    loaded = objects["model"].state_dict()
    assert loaded.keys() == saved["state_dict"].keys()
    for name, value in saved["state_dict"].items():
        assert torch.equal(loaded[name], value), name

    shutil.rmtree(tmp_path / "run")
    _, objects = train(train_config(f"init_ckpt={source}", "test=false"))
    # fresh optimizers and counters: the fine-tune counts its own steps from zero
    assert objects["trainer"].global_step == saved["global_step"]
    assert not torch.equal(
        objects["model"].generator.to_mask.weight, saved["state_dict"]["generator.to_mask.weight"]
    )


def test_init_ckpt_of_another_architecture_is_refused_and_resuming_wins(
    train_config, tmp_path, caplog
):
    source = _trained_checkpoint(train_config, tmp_path)
    with pytest.raises(ValueError, match="but the config asks for"):
        train(train_config(f"init_ckpt={source}", "model.warp=false", "train=false"))

    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    train(train_config("test=false"))
    resumed = train_config(f"init_ckpt={source}", "ckpt_path=last", "trainer.max_epochs=2")
    with caplog.at_level(logging.INFO, logger="frgan.train"):
        _, objects = train(resumed)
    assert "so init_ckpt" in caplog.text
    assert objects["trainer"].current_epoch == 2


def _cli(run_dir: Path, data_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "frgan.train",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *TINY_DATA,
        *TINY_RUN,
        *overrides,
    ]


def kill_mid_run_then_resume(
    run_dir: Path, data_dir: Path, sig: int, overrides: list[str], timeout: float = 120.0
) -> tuple[int, dict, subprocess.CompletedProcess]:
    """Train in a subprocess with `overrides` for many epochs, send `sig` once last.ckpt exists,
    then rerun two epochs past the saved one with ckpt_path=last.

    Returns the killed run's exit status, the checkpoint it left and the resumed run."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    with open(run_dir.parent / "killed.log", "w") as log:
        process = subprocess.Popen(
            _cli(run_dir, data_dir, *overrides, "trainer.max_epochs=40"),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
        )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        wait_for(last, process, timeout=timeout, poll=0.2)
        process.send_signal(sig)
        process.wait(timeout=timeout)
    finally:
        process.kill()
    saved = torch.load(last, map_location="cpu", weights_only=True)
    until = f"trainer.max_epochs={saved['epoch'] + 2}"
    finish = subprocess.run(
        _cli(run_dir, data_dir, *overrides, until, "ckpt_path=last"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=5 * timeout,
    )
    return process.returncode, saved, finish


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)]
)
def test_killed_run_resumes_and_finishes(tiny_data_dir, tmp_path, sig):
    run_dir = tmp_path / "run"
    # many short epochs, a checkpoint every 2 optimizer steps: the kill lands mid-run
    frequent_checkpoints = ["test=false", "callbacks.periodic_checkpoint.every_n_train_steps=2"]
    status, saved, finish = kill_mid_run_then_resume(
        run_dir, tiny_data_dir, sig, frequent_checkpoints
    )
    assert status == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL)
    assert 0 < saved["global_step"] < 40 * 3 * 2, "last.ckpt was written mid-run"
    assert finish.returncode == 0, finish.stderr[-3000:]
    assert "Run folder:" in finish.stdout
    last = run_dir / "checkpoints" / "last.ckpt"
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] > saved["global_step"]
    # the best, periodic and on-interrupt checkpoints all share one last.ckpt
    assert not list(last.parent.glob("last-v*.ckpt"))


def test_config_mistake_on_the_command_line_is_one_clear_message(tiny_data_dir, tmp_path):
    result = subprocess.run(
        _cli(tmp_path / "run", tiny_data_dir, "model.preset=huge"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert "model.preset" in error_lines[0] and "small" in error_lines[0], (
        "names the key and the valid values"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.image_size=80", "data.image_size"),
        ("data.batch_size=0", r"data.batch_size must be an integer >= 1"),
        ("data.retarget_prob=1.5", "data.retarget_prob"),
        ("model.gp_on=pixels", "model.gp_on"),
    ],
)
def test_config_mistakes_name_the_key(train_config, override, expected):
    with pytest.raises(Exception, match=expected):
        train(train_config(override))


def test_finishing_loggers_needs_no_wandb_when_no_wandb_logger_ran(monkeypatch):
    # a GPU machine without wandb crashed at the end of a logger=csv run (import wandb)
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError now
    from frgan.utils.loggers import finish_loggers

    finish_loggers()


def test_benchmark_records_the_device_the_steps_ran_on():
    bench = load_script("bench_train")
    timer = bench.StepTimer()

    class Module:  # fit moves the model back to the CPU at its end: the step's device counts
        device = torch.device("meta")

    timer.on_train_batch_start(None, Module(), None, batch_idx=1)
    assert timer.device == "meta"


def test_the_benchmarks_separate_heads_compute_what_the_stacked_head_does():
    bench = load_script("bench_train")
    torch.manual_seed(0)
    generator = Generator.from_preset("tiny", 16, warp=True).double()
    features = torch.randn(2, generator.to_mask.in_channels, 16, 16, dtype=torch.double)
    for stacked, separate in zip(
        generator.head(features), bench.separate_heads(generator, features), strict=True
    ):
        torch.testing.assert_close(stacked, separate)
