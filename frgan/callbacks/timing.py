"""Where a run's time goes: training steps, waiting for batches, validation, the rest.

`RunTimer` measures wall time by phase on rank 0 and, at the end of every fit, writes
`<run>/timing.json` and logs one line:

    time: 750 batches in 0:14:10 (0.88 batches/s) | steps 86% data 1% validation 9% other 4%

"steps" is the training step itself (forward, backward, optimizer); "data" the wait for the
next batch; "validation" the validation loops after the sanity check; "other" everything else
in the fit (the sanity check, checkpoints, sample media, logging, loader start-up).
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from frgan.utils.files import write_json_atomic

log = logging.getLogger(__name__)


class RunTimer(pl.Callback):
    def __init__(self, filename: str = "timing.json"):
        self.filename = filename
        self.seconds = {"steps": 0.0, "data": 0.0, "validation": 0.0}
        self.batches = 0
        self._fit_start = self._batch_start = self._batch_end = self._validation_start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.batches = 0
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batch_end = time.perf_counter()  # the first wait of an epoch includes loader start-up

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_start = time.perf_counter()
        if batch_idx > 0:
            self.seconds["data"] += self._batch_start - self._batch_end

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._batch_end = time.perf_counter()
        self.seconds["steps"] += self._batch_end - self._batch_start
        self.batches += 1

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.seconds["validation"] += time.perf_counter() - self._validation_start

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        report = self.report(time.perf_counter() - self._fit_start)
        shares = " ".join(f"{name} {share:.0%}" for name, share in report["share"].items())
        log.info(
            "time: %d batches in %s (%.2f batches/s) | %s",
            self.batches,
            datetime.timedelta(seconds=round(report["fit_s"])),
            report["batches_per_s"],
            shares,
        )
        write_json_atomic(Path(trainer.default_root_dir) / self.filename, report)

    def report(self, fit_s: float) -> dict[str, Any]:
        """Seconds and shares by phase for a fit of `fit_s` seconds."""
        seconds = {**self.seconds, "other": max(fit_s - sum(self.seconds.values()), 0.0)}
        return {
            "fit_s": fit_s,
            "batches": self.batches,
            "batches_per_s": self.batches / max(fit_s, 1e-9),
            "step_batches_per_s": self.batches / max(self.seconds["steps"], 1e-9),
            "seconds": seconds,
            "share": {name: value / max(fit_s, 1e-9) for name, value in seconds.items()},
        }
