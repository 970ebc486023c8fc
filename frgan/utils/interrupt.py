"""Save the run before it stops: SIGTERM (a scheduler's stop, `kill`) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from frgan.utils.stops import STOP_SIGNALS, Stopped

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(Callback):
    """During a fit, SIGTERM or SIGINT stops the run at the end of the current batch and writes
    `<dirpath>/last.ckpt`; resume with `ckpt_path=last`. A second signal stops at once.

    The stop goes through Lightning's own SIGTERM path (SIGTERMException at the end of a
    training or validation batch), so the checkpoint holds a whole step. SIGKILL cannot be
    caught: the periodic checkpoint (callbacks/periodic_checkpoint.yaml) covers it.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # here, not in on_fit_start: Lightning installs its SIGTERM handler after on_fit_start
        self.signum = None

        def request_stop(signum, frame):
            if self.signum is not None:
                raise Stopped(signum)
            self.signum = signum
            # Lightning's flag for SIGTERM: checked at the end of every batch
            trainer._signal_connector.received_sigterm = True

        self._previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if self.signum is None and not isinstance(exception, SIGTERMException):
            return
        # the entry point reads which signal stopped the run from the error it ends with
        exception.signum = self.signum or signal.SIGTERM
        if not isinstance(exception, SIGTERMException):
            # e.g. a DataLoader worker killed by the same signal mid-step: the state of a half
            # step is not saved; the last periodic checkpoint stands
            return
        path = self.dirpath / "last.ckpt"
        # save_checkpoint is collective under DDP and writes on rank 0 only
        trainer.save_checkpoint(path)
        log.info("stopped at step %d: saved %s", trainer.global_step, path)
