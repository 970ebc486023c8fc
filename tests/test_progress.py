"""Progress: the rich bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import re
import sys

import pytest
from pytorch_lightning.callbacks import RichProgressBar

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
