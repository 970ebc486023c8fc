"""Sample media after each validation: what a sample is, the module decides; this callback
picks it once, redraws it every epoch and writes it where people look."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from frgan.utils.media import to_uint8, write_gif, write_image, write_mp4


class SampleMedia(pl.Callback):
    """After each validation, asks the module to draw one held-out sample and saves

        <trainer.default_root_dir>/samples/epoch_NNN.png        `rows` frames, one per row
        <trainer.default_root_dir>/samples/epoch_NNN.{gif,mp4}  every frame, in order

    and logs them to wandb (wandb.Image, wandb.Video) when a WandbLogger is attached.

    The module says what a sample is (GANModule.select_sample, draw_sample,
    sample_columns): a forecast take (source | target structure | generated | ground
    truth) for stage 1, a clip (structure | ground truth | forecast | refined) for stage 2.
    The sample is chosen once and kept for every epoch, so the pictures of successive epochs
    compare: from the datamodule's sample_dataloader when it has one (FRGANDataModule's: every
    frame of the val split, whatever data.val_stride validates), else the first validation
    loader.
    """

    def __init__(
        self,
        rows: int = 4,
        max_frames: int = 32,
        fps: int = 8,
        every_n_epochs: int = 1,
        formats: tuple[str, ...] | list[str] = ("png", "gif", "mp4"),
    ):
        if min(rows, max_frames, fps, every_n_epochs) < 1:
            raise ValueError(
                "callbacks.sample_media: rows, max_frames, fps and every_n_epochs must all be >= 1"
            )
        unknown = set(formats) - {"png", "gif", "mp4"}
        if unknown:
            raise ValueError(
                f"callbacks.sample_media.formats: unknown {sorted(unknown)}; choose from png, gif, mp4"
            )
        self.rows, self.max_frames, self.fps = rows, max_frames, fps
        self.every_n_epochs = every_n_epochs
        self.formats = tuple(formats)
        self._sample: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        if self._sample is None:
            self._sample = pl_module.select_sample(_sample_loader(trainer), self.max_frames)
            if self._sample is None:
                return
        frames = self._draw(pl_module)  # [T, H, kW, 3] uint8
        stem = Path(trainer.default_root_dir) / "samples" / f"epoch_{trainer.current_epoch:03d}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        written = {}
        if "png" in self.formats:
            rows = np.unique(np.linspace(0, len(frames) - 1, self.rows).round().astype(int))
            written["png"] = write_image(stem.with_suffix(".png"), np.concatenate(frames[rows]))
        if "gif" in self.formats:
            written["gif"] = write_gif(stem.with_suffix(".gif"), frames, self.fps)
        if "mp4" in self.formats:
            written["mp4"] = write_mp4(stem.with_suffix(".mp4"), frames, self.fps)
        self._log_to_wandb(trainer, pl_module, written)

    @torch.no_grad()
    def _draw(self, pl_module: pl.LightningModule) -> np.ndarray:
        sample = {k: v.to(pl_module.device) for k, v in self._sample.items()}
        was_training = pl_module.training
        pl_module.eval()
        try:
            grid = pl_module.draw_sample(sample)
        finally:
            pl_module.train(was_training)
        return to_uint8(grid)

    def _log_to_wandb(self, trainer: pl.Trainer, pl_module, written: dict[str, Path]) -> None:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers or not written:
            return
        import wandb

        caption = " | ".join(pl_module.sample_columns)
        media = {}
        if "png" in written:
            media["samples/grid"] = wandb.Image(str(written["png"]), caption=caption)
        video = written.get("mp4") or written.get("gif")
        if video is not None:
            media["samples/clip"] = wandb.Video(
                str(video), caption=caption, format=video.suffix.lstrip(".")
            )
        for logger in wandb_loggers:
            logger.experiment.log({**media, "trainer/global_step": trainer.global_step})


def _sample_loader(trainer: pl.Trainer):
    sample_dataloader = getattr(trainer.datamodule, "sample_dataloader", None)
    if sample_dataloader is not None:
        return sample_dataloader()
    loaders = trainer.val_dataloaders
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders
