"""Save the run before it dies: SIGTERM (cluster pre-emption, `kill`) or Ctrl-C."""

from __future__ import annotations

import logging
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(Callback):
    """Write `<dirpath>/last.ckpt` when training stops on SIGTERM or KeyboardInterrupt.

    Resume with `ckpt_path=last`. SIGKILL cannot be caught: the periodic checkpoint
    (callbacks/periodic_checkpoint.yaml) covers it.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return
        path = self.dirpath / "last.ckpt"
        # save_checkpoint is collective under DDP and writes on rank 0 only
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            log.warning(
                "interrupted at step %d: saved %s (resume with ckpt_path=last)",
                trainer.global_step,
                path,
            )
