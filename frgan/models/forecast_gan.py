"""ForecastGAN: stage 1 of FRGAN as a LightningModule (reference section 3).

Per batch: one critic step, and every `n_critic`-th batch one generator step.
    critic:    D(fake) − D(real) + λ·GP                    (WGAN-GP, λ = 10)
    generator: −D(fake) + 3.0·mean|x̂ − xt| + 0.05·mean|w|
Adam(1e-4, betas (0, 0.9)) for both. Manual optimization, so mixed precision and DDP go
through Lightning: `self.manual_backward` scales the loss (16-mixed), `opt.step()` unscales,
skips non-finite steps and updates the scaler; gradient clipping runs in
`on_before_optimizer_step`, i.e. after unscaling. The gradient penalty is computed in
fp32 with autocast off, so its double backward never runs in half precision.

DDP: each backward touches only the critic's or only the generator's parameters, so use
the `ddp_find_unused_parameters_true` strategy (`ddp_spawn_find_unused_parameters_true`
on CPU), as conf/trainer/ddp.yaml does.

Batches: dict of float32 [B,3,H,W] in [-1,1]: "x0" source frame, "s0" its structure
map, "xt" target frame, "st" target structure map (extra keys are ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.aggregation import MeanMetric

from frgan import metrics
from frgan.errors import ConfigError
from frgan.models.critic import Critic
from frgan.models.ema import ema_decay_at, update_ema
from frgan.models.generator import Forecast, Generator
from frgan.models.init import init_weights
from frgan.models.presets import architecture

BATCH_KEYS = ("x0", "s0", "xt", "st")
GP_MODES = ("image_and_structure", "image")
QUALITY_METRICS = ("psnr", "ssim", "psnr_moving", "ssim_moving")
# what a checkpoint must agree on with the module that loads it
ARCHITECTURE_HPARAMS = ("preset", "image_size", "ema")


class ForecastGAN(pl.LightningModule):
    def __init__(
        self,
        preset: str | Mapping = "small",
        image_size: int = 64,
        gp_weight: float = 10.0,
        gp_on: str = "image_and_structure",
        l1_weight: float = 3.0,
        mask_weight: float = 0.05,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 1,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
        moving_threshold: float = metrics.DEFAULT_MOVING_THRESHOLD,
        monitor: str = "val/psnr_moving",
        monitor_mode: str = "max",
    ):
        """
        preset: width preset name ("paper", "small", "tiny") or a mapping
            {base, max_channels, latent}; image_size: 8..256 sizes the depth rule accepts.
        gp_on: "image_and_structure" (the release: gradient norm over all 6 critic input
            channels) or "image" (the standard WGAN-GP).
        n_critic: critic steps per generator step. ema_decay: e.g. 0.999 keeps an EMA copy
            of the generator for validation and sampling; null = off.
        grad_clip: max gradient norm for both networks; null = off.
        moving_threshold: |xt − x0| above which a pixel belongs to the moving region.
        monitor, monitor_mode: the metric for checkpointing and sweeps (read by the configs).
        """
        super().__init__()
        _check_choice("model.gp_on", gp_on, GP_MODES)
        _check_choice("model.monitor_mode", monitor_mode, ("min", "max"))
        if not (isinstance(n_critic, int) and n_critic >= 1):
            raise ConfigError(f"model.n_critic must be an integer >= 1, got {n_critic!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigError(
                f"model.ema_decay must be in (0, 1) or null (no EMA), got {ema_decay!r}"
            )
        if grad_clip is not None and grad_clip <= 0:
            raise ConfigError(
                f"model.grad_clip must be > 0 or null (no clipping), got {grad_clip!r}"
            )
        self.save_hyperparameters()
        self.automatic_optimization = False

        arch = architecture(preset, image_size)
        self.generator = Generator(arch)
        self.critic = Critic(arch)
        init_weights(self.generator)
        init_weights(self.critic)
        self.generator_ema = None
        if ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

        self.monitor = monitor
        # per-image means over an epoch; NaN (pairs with no moving pixel) is skipped
        self.quality = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        f"{prefix}{name}": MeanMetric(nan_strategy="ignore")
                        for prefix in ("", "copy_")
                        for name in QUALITY_METRICS
                    }
                )
                for stage in ("val", "test")
            }
        )

    # ------------------------------------------------------------------ inference
    @property
    def sampling_generator(self) -> Generator:
        """The EMA generator when there is one, else the trained one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def forward(self, x0: torch.Tensor, s0: torch.Tensor, st: torch.Tensor) -> Forecast:
        return self.sampling_generator(x0, s0, st)

    # ------------------------------------------------------------------ training
    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(hp.betas)
        critic_opt = torch.optim.Adam(self.critic.parameters(), lr=hp.lr, betas=betas)
        generator_opt = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas)
        return critic_opt, generator_opt

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        x0, s0, xt, st = self._unpack(batch)
        # a retargeted sample's target structure is another subject's expression, so its xt is
        # not a picture of st: it trains only through the critic, as a fake
        # (weights rather than indexing keep every rank's graph the same under DDP)
        paired = (~_retargeted(batch, x0)).to(x0.dtype)
        critic_opt, generator_opt = self.optimizers()
        generator_turn = (batch_idx + 1) % self.hparams.n_critic == 0

        # one generator forward serves both steps; its graph is kept only when G trains now
        with torch.set_grad_enabled(generator_turn):
            forecast = self.generator(x0, s0, st)

        with self.toggled_optimizer(critic_opt):
            fake = forecast.frame.detach()
            wdist = _weighted_mean(self.critic(xt, st), paired) - self.critic(fake, st).mean()
            gp = self.gradient_penalty(xt, fake, st, weights=paired)
            d_loss = -wdist + self.hparams.gp_weight * gp
            critic_opt.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            critic_opt.step()
        self.log_dict(
            {"train/d_loss": d_loss, "train/wdist": wdist, "train/gp": gp}, prog_bar=False
        )

        if not generator_turn:
            return
        with self.toggled_optimizer(generator_opt):
            adversarial = -self.critic(forecast.frame, st).mean()
            l1 = _weighted_mean((forecast.frame - xt).abs().mean(dim=(1, 2, 3)), paired)
            mask = forecast.mask.abs().mean()
            g_loss = adversarial + self.hparams.l1_weight * l1 + self.hparams.mask_weight * mask
            generator_opt.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            generator_opt.step()
        self.log_dict({"train/g_loss": g_loss, "train/mask": mask})
        self.log("train/l1", l1, prog_bar=True)

        if self.generator_ema is not None:
            decay = ema_decay_at(self.global_step, self.hparams.ema_decay)
            update_ema(self.generator_ema, self.generator, decay)

    def gradient_penalty(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        structure: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mean((‖∇ D(x̃, st)‖ − 1)²) on random interpolates x̃ of real and fake images.

        "image_and_structure" (the release) takes the norm over all 6 input channels,
        "image" over the image channels only. Runs in fp32 with autocast off. `weights`
        [B] weigh the samples of the mean (default: all 1).
        """
        with torch.autocast(device_type=real.device.type, enabled=False):
            alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
            image = torch.lerp(fake.float(), real.float(), alpha).requires_grad_(True)
            # detach: a fresh tensor, so the batch's own `st` never starts requiring grad
            structure = structure.detach().float()
            structure.requires_grad_(self.hparams.gp_on == "image_and_structure")
            inputs = [image, structure] if structure.requires_grad else [image]
            scores = self.critic(image, structure)
            grads = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
            norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)
            penalty = (norm - 1).square()
            return penalty.mean() if weights is None else _weighted_mean(penalty, weights.float())

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after unscaling the gradients (16-mixed), so clip here
        if self.hparams.grad_clip is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm"
            )

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._update_quality("val", batch)

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._update_quality("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val")

    def on_test_epoch_end(self) -> None:
        self._log_quality("test")

    def _update_quality(self, stage: str, batch: Mapping[str, torch.Tensor]) -> None:
        """Per-image metrics of the forecast and of copying x0, over the pairs where
        something moves (pairs without motion, like t = 0, tell nothing and would give
        the copy an infinite PSNR)."""
        x0, s0, xt, st = self._unpack(batch)
        pred = self(x0, s0, st).frame
        moving = metrics.moving_mask(x0, xt, self.hparams.moving_threshold)
        has_motion = moving.flatten(1).any(dim=1)
        for prefix, candidate in (("", pred), ("copy_", x0)):
            values = {
                "psnr": metrics.psnr(candidate, xt),
                "ssim": metrics.ssim(candidate, xt),
                "psnr_moving": metrics.psnr(candidate, xt, moving),
                "ssim_moving": metrics.ssim(candidate, xt, moving),
            }
            for name, per_image in values.items():
                per_image = per_image.masked_fill(~has_motion, float("nan"))
                self.quality[stage][prefix + name].update(per_image)

    def _log_quality(self, stage: str) -> None:
        results = {}
        for name, metric in self.quality[stage].items():
            results[f"{stage}/{name}"] = metric.compute()  # synchronized across processes
            metric.reset()
        for name in QUALITY_METRICS:
            results[f"{stage}/{name}_gain"] = (
                results[f"{stage}/{name}"] - results[f"{stage}/copy_{name}"]
            )
        self.log_dict(results, sync_dist=True)

    def _unpack(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        missing = (
            [k for k in BATCH_KEYS if k not in batch]
            if isinstance(batch, Mapping)
            else list(BATCH_KEYS)
        )
        if missing:
            got = list(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(
                f"ForecastGAN needs batches with keys {list(BATCH_KEYS)} "
                f"([B,3,H,W] in [-1,1]); missing {missing}, got {got}"
            )
        tensors = tuple(batch[k] for k in BATCH_KEYS)
        size = self.hparams.image_size
        for key, tensor in zip(BATCH_KEYS, tensors, strict=True):
            if tensor.ndim != 4 or tuple(tensor.shape[1:]) != (3, size, size):
                raise ValueError(
                    f"batch[{key!r}] has shape {tuple(tensor.shape)} but the model expects "
                    f"[B,3,{size},{size}]; set model.image_size to the data's image size"
                )
        return tensors

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["frgan_model"] = self._identity()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_identity(checkpoint, "the checkpoint")

    def check_checkpoint(self, path: str | Path) -> None:
        """Raise a clear error unless `path` is a checkpoint of this model class and
        architecture (same preset, image size and EMA setting)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        except Exception as error:  # noqa: BLE001 — any unreadable file gets the same message
            raise ValueError(
                f"{path} is not a readable PyTorch Lightning checkpoint ({error})"
            ) from error
        self._check_identity(checkpoint, str(path))

    def _identity(self) -> dict[str, Any]:
        preset = self.hparams.preset
        return {
            "class": type(self).__name__,
            "preset": dict(preset) if isinstance(preset, Mapping) else preset,
            "image_size": self.hparams.image_size,
            "ema": self.hparams.ema_decay is not None,
        }

    def _check_identity(self, checkpoint: Any, source: str) -> None:
        wanted = self._identity()
        found = checkpoint.get("frgan_model") if isinstance(checkpoint, dict) else None
        if found is None:
            keys = (
                sorted(checkpoint)[:8]
                if isinstance(checkpoint, dict)
                else type(checkpoint).__name__
            )
            raise ValueError(
                f"{source} is not a FRGAN model checkpoint (it has {keys}); "
                f"the config asks for {_describe(wanted)}"
            )
        if found != wanted:
            raise ValueError(
                f"{source} holds {_describe(found)} but the config asks for {_describe(wanted)}; "
                "pick a checkpoint of this model or set the model config to match it"
            )


def _describe(identity: Mapping[str, Any]) -> str:
    details = ", ".join(f"{k}={identity.get(k)!r}" for k in ARCHITECTURE_HPARAMS)
    return f"{identity.get('class')}({details})"


def _retargeted(batch: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    """Per-sample flags of the data pipeline's retargeting augmentation (all False without it)."""
    flags = batch.get("retargeted")
    if flags is None:
        return torch.zeros(like.shape[0], dtype=torch.bool, device=like.device)
    return torch.as_tensor(flags, device=like.device).bool()


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample `values` [B] or [B,1] with per-sample `weights` [B]; 0 when all weights are 0."""
    return (values.flatten() * weights).sum() / weights.sum().clamp_min(1.0)


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is invalid; valid values: {', '.join(choices)}")
