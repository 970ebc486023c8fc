"""Run an frgan entry point with a callback that marks the phase a fit is in, so that a test
can signal it at a chosen moment: `python tests/phase_marker.py <folder> <module> <args...>`.

The marker writes <folder>/<phase> (train, validate, test) when a batch of that phase starts
and slows those batches a little, so that a signal lands while the phase runs. Outside a fit
(evaluate, generate) every ForecastGAN forecast writes <folder>/forecast and is slowed the same
way."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

from pytorch_lightning import Callback


class PhaseMarker(Callback):
    def __init__(self, folder: Path):
        self.folder = folder

    def _mark(self, phase: str) -> None:
        (self.folder / phase).touch()
        time.sleep(0.2)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._mark("train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._mark("validate")

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._mark("test")


if __name__ == "__main__":
    folder, module, *arguments = sys.argv[1:]
    import frgan.utils.instantiate

    build_callbacks = frgan.utils.instantiate.instantiate_callbacks
    frgan.utils.instantiate.instantiate_callbacks = lambda cfg: [
        *build_callbacks(cfg),
        PhaseMarker(Path(folder)),
    ]
    from frgan.models.forecast_gan import ForecastGAN

    forecast = ForecastGAN.forward

    def marked_forecast(self, *args, **kwargs):
        (Path(folder) / "forecast").touch()
        time.sleep(0.2)
        return forecast(self, *args, **kwargs)

    ForecastGAN.forward = marked_forecast
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
