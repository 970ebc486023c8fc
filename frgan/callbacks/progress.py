"""Progress: the live rich bar on a terminal, plain lines in a log file.

A batch job or `make train > log` has no terminal: a live bar writes nothing readable there, so
`progress_bar(mode="auto")` chooses by whether stdout is a terminal when the run starts.
`ProgressLines` prints one line every `every_n_seconds` (and at the end of every epoch):

    train epoch 2/3 step 120/250 (48%) | 31.4 samples/s | ETA epoch 0:00:33, fit 0:02:41 | d_loss -0.41 g_loss 1.52 ...

The step is the position in the epoch (a resumed run continues from its checkpoint's); the rate
and the ETAs count only the batches this process ran, since the epoch or the resumed fit began.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress import ProgressBar

from frgan.errors import ConfigError
from frgan.utils.checks import check_choice

MODES = ("auto", "rich", "lines")


def progress_bar(mode: str = "auto", every_n_seconds: float = 30.0) -> ProgressBar:
    """The rich bar when stdout is a terminal (mode=auto) or asked for, else `ProgressLines`."""
    check_choice("callbacks.progress_bar.mode", mode, MODES)
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "lines"
    return RichProgressBar() if mode == "rich" else ProgressLines(every_n_seconds)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=max(0, round(seconds))))


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor."""
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(batch, torch.Tensor):
        return len(batch)
    for value in values:
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return len(value)
    return 0


def _scalars(metrics: Mapping[str, Any], prefix: str) -> str:
    """`name value` pairs of the scalar metrics under `prefix` (the prefix dropped)."""
    parts = []
    for key in sorted(metrics):
        value = metrics[key]
        if not key.startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            parts.append(f"{key[len(prefix) :]} {value:.4g}")
    return " ".join(parts)


class ProgressLines(ProgressBar):
    """Plain progress lines on stdout for runs without a terminal (rank 0 only)."""

    def __init__(self, every_n_seconds: float = 30.0):
        super().__init__()
        if not every_n_seconds > 0:
            raise ConfigError(
                f"callbacks.progress_bar.every_n_seconds must be > 0, got {every_n_seconds!r}"
            )
        self.every_n_seconds = float(every_n_seconds)
        self._enabled = True
        self._fit_start = self._validation_start = 0.0
        self._batches_done = 0  # training batches this process ran in the fit
        self._start_epoch_clock()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _line(self, text: str) -> None:
        if self._enabled:
            print(text, flush=True)

    def _start_epoch_clock(self) -> None:
        """Rate and ETA count from here: the batches and samples this process runs next."""
        self._epoch_start = self._last_line = time.monotonic()
        self._samples = self._epoch_batches = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.monotonic()
        self._batches_done = 0
        # resumed mid-epoch, Lightning skips on_train_epoch_start for the epoch it continues
        self._start_epoch_clock()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_epoch_clock()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._samples += _batch_size(batch)
        self._epoch_batches += 1
        self._batches_done += 1
        now = time.monotonic()
        total = self.total_train_batches
        last = isinstance(total, int) and batch_idx + 1 >= total
        if now - self._last_line < self.every_n_seconds and not last:
            return
        self._last_line = now
        self._line(self.train_line(trainer, batch_idx + 1, total, now))

    def train_line(self, trainer: pl.Trainer, done: int, total: int | float, now: float) -> str:
        elapsed = max(now - self._epoch_start, 1e-9)
        per_batch = elapsed / max(self._epoch_batches, 1)
        text = f"train epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {done}"
        if isinstance(total, int):
            text += f"/{total} ({100 * done / max(total, 1):.0f}%)"
        text += f" | {self._samples / elapsed:.1f} samples/s"
        if isinstance(total, int):
            left_in_epoch = max(total - done, 0) * per_batch
            epochs_after = max((trainer.max_epochs or 0) - trainer.current_epoch - 1, 0)
            fit_left = left_in_epoch + epochs_after * total * per_batch
            text += f" | ETA epoch {_clock(left_in_epoch)}, fit {_clock(fit_left)}"
        losses = _scalars(trainer.callback_metrics, "train/")
        return text + (f" | {losses}" if losses else "")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        seconds = time.monotonic() - self._validation_start
        values = _scalars(
            {k: v for k, v in trainer.callback_metrics.items() if "/copy_" not in k}, "val/"
        )
        self._line(
            f"validate epoch {trainer.current_epoch + 1} ({_clock(seconds)}) | {values}".rstrip(
                " |"
            )
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._line(
            f"fit done: {self._batches_done} batches in {_clock(time.monotonic() - self._fit_start)}"
        )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = _scalars(
            {k: v for k, v in trainer.callback_metrics.items() if "/copy_" not in k}, "test/"
        )
        self._line(f"test | {values}".rstrip(" |"))
