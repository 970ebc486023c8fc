"""Progress: the rich bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import re
import sys

import pytest
from pytorch_lightning.callbacks import RichProgressBar

import frgan.callbacks.progress as progress_module
from frgan.callbacks.progress import ProgressLines, progress_bar
from frgan.errors import ConfigError
from frgan.train import train


def test_the_bar_is_chosen_by_whether_stdout_is_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert isinstance(progress_bar("auto"), ProgressLines)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(progress_bar("auto"), RichProgressBar)
    assert isinstance(progress_bar("lines", every_n_seconds=5), ProgressLines)
    with pytest.raises(ConfigError, match="callbacks.progress_bar.mode"):
        progress_bar("fancy")
    with pytest.raises(ConfigError, match="every_n_seconds"):
        progress_bar("lines", every_n_seconds=0)


def test_progress_lines_report_stage_epoch_step_speed_eta_and_losses(train_config, capsys):
    cfg = train_config(
        "callbacks.progress_bar.mode=lines",
        "callbacks.progress_bar.every_n_seconds=1e-6",  # a line after every batch
    )
    train(cfg)
    lines = capsys.readouterr().out.splitlines()
    train_lines = [line for line in lines if line.startswith("train epoch")]
    assert [line.split(" | ")[0] for line in train_lines] == [
        f"train epoch 1/1 step {s}/3 ({round(100 * s / 3)}%)" for s in (1, 2, 3)
    ]
    assert re.search(
        r"\| [\d.]+ samples/s \| ETA epoch \d:\d\d:\d\d, fit \d:\d\d:\d\d \|", train_lines[0]
    )
    assert "d_loss" in train_lines[-1] and "g_loss" in train_lines[-1]
    validation = [line for line in lines if line.startswith("validate epoch")]
    assert len(validation) == 1 and "psnr_moving" in validation[0]
    assert "copy_" not in validation[0], "the baselines stay in the logs, not the progress line"
    assert any(line.startswith("fit done: 3 batches") for line in lines)
    assert any(line.startswith("test | ") and "psnr_moving" in line for line in lines)


def test_a_resumed_run_rates_only_the_batches_it_ran(train_config, capsys, monkeypatch, tmp_path):
    """Resumed mid-epoch, Lightning skips on_train_epoch_start: the rate and ETA once counted
    from the clock's zero (the machine's uptime, here a week) and read 0.0 samples/s and an
    ETA of days. They count the batches this process ran, from its start."""
    periodic = tmp_path / "periodic"  # its last.ckpt is the mid-epoch one, after batch 1 of 3
    checkpoints = [
        "test=false",
        "callbacks.periodic_checkpoint.every_n_train_steps=2",  # critic + generator: a batch
        f"callbacks.periodic_checkpoint.dirpath={periodic}",
    ]
    train(train_config(*checkpoints, "trainer.max_steps=2"))
    capsys.readouterr()
    week = 7 * 24 * 3600.0
    monotonic = progress_module.time.monotonic
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: week + monotonic())
    resumed = train_config(
        *checkpoints,
        "callbacks.progress_bar.mode=lines",
        "callbacks.progress_bar.every_n_seconds=1e-6",
        f"ckpt_path={periodic / 'last.ckpt'}",
    )
    train(resumed)
    train_lines = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("train epoch")
    ]
    assert [line.split(" | ")[0] for line in train_lines] == [
        "train epoch 1/1 step 2/3 (67%)",
        "train epoch 1/1 step 3/3 (100%)",
    ], "the step is the epoch's, continued from the checkpoint"
    for line in train_lines:
        rate, eta = line.split(" | ")[1:3]
        assert float(rate.split()[0]) > 0, line
        assert re.fullmatch(r"ETA epoch \d:\d\d:\d\d, fit \d:\d\d:\d\d", eta), line
