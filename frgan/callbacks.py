"""Lightning callbacks of FRGAN."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytorch_lightning as pl
import torch
from einops import rearrange
from pytorch_lightning.loggers import WandbLogger

COLUMNS = ("x0", "st", "generated", "xt")  # source | target structure | generated | ground truth


class SampleGrid(pl.Callback):
    """After each validation, forecasts one held-out take from its first frame and saves

        <trainer.default_root_dir>/samples/epoch_NNN.png   `rows` frames of the take, one per row
        <trainer.default_root_dir>/samples/epoch_NNN.gif   every frame of the take, in order

    with the columns source | target structure | generated | ground truth, and logs both
    to wandb (wandb.Image, wandb.Video) when a WandbLogger is attached. The take is the
    first one of the validation loader (its pairs share x0; they are ordered by frame t
    when the batch carries "t"), read once and kept for every epoch.
    """

    def __init__(self, rows: int = 4, max_frames: int = 32, fps: int = 8, every_n_epochs: int = 1):
        if min(rows, max_frames, fps, every_n_epochs) < 1:
            raise ValueError(
                "SampleGrid: rows, max_frames, fps and every_n_epochs must all be >= 1"
            )
        self.rows = rows
        self.max_frames = max_frames
        self.fps = fps
        self.every_n_epochs = every_n_epochs
        self._take: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        if self._take is None:
            self._take = self._first_take(trainer)
            if self._take is None:
                return
        frames = self._render(pl_module)  # [T, H, 4W, 3] uint8
        out_dir = Path(trainer.default_root_dir) / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = out_dir / f"epoch_{trainer.current_epoch:03d}"
        rows = np.unique(np.linspace(0, len(frames) - 1, self.rows).round().astype(int))
        png = _write_atomic(stem.with_suffix(".png"), np.concatenate(frames[rows], axis=0))
        gif = _write_atomic(stem.with_suffix(".gif"), frames, duration=1000 / self.fps, loop=0)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                caption = " | ".join(COLUMNS)
                logger.experiment.log(
                    {
                        "samples/grid": wandb.Image(str(png), caption=caption),
                        "samples/clip": wandb.Video(str(gif), caption=caption, format="gif"),
                        "trainer/global_step": trainer.global_step,
                    }
                )

    def _first_take(self, trainer: pl.Trainer) -> dict[str, torch.Tensor] | None:
        """Up to max_frames pairs of the validation loader's first take."""
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        if loader is None:
            return None
        pairs: list[dict[str, torch.Tensor]] = []
        for batch in loader:
            for b in range(batch["x0"].shape[0]):
                pair = {k: batch[k][b] for k in ("x0", "s0", "xt", "st")}
                pair["t"] = torch.as_tensor(batch["t"][b] if "t" in batch else len(pairs))
                if pairs and not torch.equal(pair["x0"], pairs[0]["x0"]):
                    return _stack_by_time(pairs)  # the next take has begun
                pairs.append(pair)
                if len(pairs) == self.max_frames:
                    return _stack_by_time(pairs)
        return _stack_by_time(pairs) if pairs else None

    @torch.no_grad()
    def _render(self, pl_module: pl.LightningModule) -> np.ndarray:
        take = {k: v.to(pl_module.device) for k, v in self._take.items()}
        was_training = pl_module.training
        pl_module.eval()
        output = pl_module(take["x0"], take["s0"], take["st"])
        pl_module.train(was_training)
        take["generated"] = getattr(output, "frame", output)
        grid = torch.cat([take[name].float() for name in COLUMNS], dim=-1)  # side by side
        return _to_uint8(grid)


def _stack_by_time(pairs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    pairs = sorted(pairs, key=lambda pair: int(pair["t"]))
    return {k: torch.stack([pair[k] for pair in pairs]) for k in pairs[0]}


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> [N,H,W,3] uint8."""
    images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return rearrange(images, "n c h w -> n h w c").numpy()


def _write_atomic(path: Path, image: np.ndarray, **kwargs) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    iio.imwrite(tmp, image, **kwargs)
    os.replace(tmp, path)
    return path
