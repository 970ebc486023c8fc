"""GANModule: what both stages of FRGAN share, written once.

A stage subclasses it and supplies its networks (`self.generator`, `self.critic`) and
losses; the base owns the training loop of a critic and a generator under manual
optimization, the gradient penalty, clipping, the EMA sampling generator, the quality
metrics beside baselines, checkpoint identity and the sample a callback draws.

Per batch: one critic step, and every `n_critic`-th batch one generator step. Manual
optimization, so mixed precision and DDP go through Lightning: `manual_backward` scales the
loss (16-mixed), `opt.step()` unscales, skips non-finite steps and updates the scaler;
gradient clipping runs in `on_before_optimizer_step`, i.e. after unscaling. The gradient
penalty is computed in fp32 with autocast off, so its double backward never runs in half
precision.

DDP: each backward touches only the critic's or only the generator's parameters, so use
the `ddp_find_unused_parameters_true` strategy (`ddp_spawn_find_unused_parameters_true` on
CPU), as conf/trainer/ddp.yaml does.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.aggregation import MeanMetric

from frgan.errors import ConfigError
from frgan.metrics import registry
from frgan.models.ema import ema_decay_at, update_ema
from frgan.utils.checkpoint_io import (
    CheckpointError,
    DamagedCheckpointError,
    add_digest,
    check_digest,
    read_checkpoint,
    weights_mismatch,
)
from frgan.utils.checks import check_choice, check_int, check_number
from frgan.utils.random_state import random_states, set_random_states

log = logging.getLogger(__name__)

GP_MODES = ("image_and_structure", "image")
RANDOM_STATES_KEY = "frgan_random_states"
LR_SCHEDULES = ("constant", "cosine")


class GANModule(pl.LightningModule):
    """Base LightningModule of a FRGAN stage. Subclasses define:

    data_stage          the `data.stage` whose batches the module trains on
    candidates          metric prefixes: "" (the model) first, then baselines ("copy_", ...)
    metric_levels       the levels of frgan.metrics.registry it scores ("frame", "clip")
    sample_columns      the column names of a drawn sample

    generator_inputs(batch) -> inputs           validated tensors of a batch
    run_generator(inputs, generator) -> output  a forward pass of the given generator
    critic_loss(inputs, output) -> (loss, logs)
    generator_loss(inputs, output) -> (loss, logs)
    score_batch(inputs) -> {candidate: {metric: per-sample values}}
    select_sample(loader, max_frames) / draw_sample(sample)
    identity() -> what a checkpoint must agree on
    """

    data_stage: ClassVar[str]
    candidates: ClassVar[tuple[str, ...]] = ("", "copy_")
    metric_levels: ClassVar[tuple[str, ...]] = (registry.FRAME,)
    sample_columns: ClassVar[tuple[str, ...]]
    progress_metric: ClassVar[str] = "l1"  # the generator loss term shown in the progress bar

    generator: nn.Module
    critic: nn.Module

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.generator_ema: nn.Module | None = None
        self.verify_checkpoints = True  # check the weights' digest when loading a checkpoint
        self._random_states_to_restore: dict[str, Any] | None = None
        # per-sample means over an epoch; NaN (samples where the metric is undefined) is skipped
        self.quality_metrics = registry.keys(*self.metric_levels)  # names: the module pickles
        self.quality = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        f"{prefix}{name}": MeanMetric(nan_strategy="ignore")
                        for prefix in self.candidates
                        for name in self.quality_metrics
                    }
                )
                for stage in ("val", "test")
            }
        )

    def check_training_options(self) -> None:
        """Check the options every stage shares, from the saved hyper-parameters (a stage's
        constructor calls it after save_hyperparameters): lr, generator_lr, betas, n_critic,
        gp_weight, gp_on, gp_every, ema_decay, grad_clip, lr_schedule, lr_final_fraction,
        moving_threshold, monitor, monitor_mode."""
        hp = self.hparams
        check_choice("model.gp_on", hp.gp_on, GP_MODES)
        check_choice("model.lr_schedule", hp.lr_schedule, LR_SCHEDULES)
        check_number("model.lr_final_fraction", hp.lr_final_fraction, least=0.0, most=1.0)
        check_int("model.gp_every", hp.gp_every)
        check_choice("model.monitor_mode", hp.monitor_mode, ("min", "max"))
        check_int("model.n_critic", hp.n_critic)
        check_number("model.lr", hp.lr, above=0.0)
        check_number("model.generator_lr", hp.generator_lr, above=0.0, null="= model.lr")
        check_number("model.ema_decay", hp.ema_decay, above=0.0, below=1.0, null="no EMA")
        check_number("model.grad_clip", hp.grad_clip, above=0.0, null="no clipping")
        check_number("model.gp_weight", hp.gp_weight, least=0.0)
        check_number("model.moving_threshold", hp.moving_threshold, least=0.0)

    # ------------------------------------------------------------------ subclass hooks
    def generator_inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def run_generator(self, inputs: Mapping[str, torch.Tensor], generator: nn.Module) -> Any:
        raise NotImplementedError

    def critic_loss(self, inputs, output) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def generator_loss(self, inputs, output) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def score_batch(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def select_sample(self, loader, max_frames: int) -> dict[str, torch.Tensor] | None:
        raise NotImplementedError

    def draw_sample(self, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def animate(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        structures: torch.Tensor,
        l0: torch.Tensor | None = None,
        landmarks: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Inference for generate/evaluate: source frames x0 [B,3,H,W], their structure maps
        s0 and target structure clips [B,T,3,H,W] -> named clips [B,T,3,H,W] in [-1,1]
        ("forecast", and "refined" for a two-stage model). Uses the sampling generator(s).
        l0 [B,68,2] and landmarks [B,T,68,2]: the 68 landmarks the maps were drawn from, which
        a forecaster with model.landmark_warp needs."""
        raise NotImplementedError

    def batch_tensors(
        self,
        batch: Any,
        images: tuple[str, ...],
        clips: tuple[str, ...] = (),
        layout: str = "[B,3,H,W] in [-1,1]",
    ) -> dict[str, torch.Tensor]:
        """The image [B,3,S,S] and clip [B,T,3,S,S] tensors of a batch (S = model.image_size),
        checked: one clear error for a missing key or a wrong shape."""
        keys = (*images, *clips)
        is_mapping = isinstance(batch, Mapping)
        missing = [k for k in keys if k not in batch] if is_mapping else list(keys)
        if missing:
            got = list(batch) if is_mapping else type(batch).__name__
            raise ValueError(
                f"{type(self).__name__} needs batches with keys {list(keys)} ({layout}); "
                f"missing {missing}, got {got}"
            )
        size = self.hparams.image_size
        for key in keys:
            shape, clip = tuple(batch[key].shape), key in clips
            if len(shape) != (5 if clip else 4) or shape[-3:] != (3, size, size):
                wanted = (
                    f"[B,T,3,{size},{size}] clips; use data.stage=refine"
                    if clip
                    else f"[B,3,{size},{size}]; set model.image_size to the data's image size"
                )
                raise ValueError(f"batch[{key!r}] has shape {shape} but the model expects {wanted}")
        return {key: batch[key] for key in keys}

    # ------------------------------------------------------------------ EMA and sampling
    def init_ema(self) -> None:
        """Call once the generator exists: keeps an EMA copy when model.ema_decay is set."""
        if self.hparams.ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator when there is one, else the trained one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    # ------------------------------------------------------------------ training
    def critic_parameters(self) -> Iterator[nn.Parameter]:
        """What the critic's optimizer trains (a stage with more critics adds theirs)."""
        return self.critic.parameters()

    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(hp.betas)
        critic_opt = torch.optim.Adam(self.critic_parameters(), lr=hp.lr, betas=betas)
        generator_opt = torch.optim.Adam(
            self.generator.parameters(), lr=hp.generator_lr or hp.lr, betas=betas
        )
        if hp.lr_schedule == "constant":
            return critic_opt, generator_opt
        # stepped once per optimizer step: the critic steps every batch, the generator every
        # n_critic-th batch
        batches = float(self.trainer.estimated_stepping_batches)
        if self.trainer.max_steps > 0:  # global steps count the steps of both optimizers
            batches = min(batches, self.trainer.max_steps * hp.n_critic / (hp.n_critic + 1))
        if not math.isfinite(batches):
            raise ConfigError(
                "model.lr_schedule=cosine needs a finite run: set trainer.max_epochs or "
                "trainer.max_steps"
            )
        batches = max(int(batches), 1)
        schedules = [
            torch.optim.lr_scheduler.LambdaLR(
                optimizer, partial(cosine_factor, steps=steps, final=hp.lr_final_fraction)
            )
            for optimizer, steps in (
                (critic_opt, batches),
                (generator_opt, max(batches // hp.n_critic, 1)),
            )
        ]
        return [critic_opt, generator_opt], schedules

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        inputs = self.generator_inputs(batch)
        critic_opt, generator_opt = self.optimizers()
        generator_turn = (batch_idx + 1) % self.hparams.n_critic == 0

        # one generator forward serves both steps; its graph is kept only when G trains now
        with torch.set_grad_enabled(generator_turn):
            output = self.run_generator(inputs, self.generator)

        with self.toggled_optimizer(critic_opt):
            d_loss, logs = self.critic_loss(inputs, output)
            critic_opt.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            critic_opt.step()
        self.log_dict({"train/d_loss": d_loss, **_prefixed("train/", logs)})
        schedules = self.lr_schedulers() if self.hparams.lr_schedule != "constant" else None
        if schedules:
            schedules[0].step()

        if not generator_turn:
            return
        with self.toggled_optimizer(generator_opt):
            g_loss, logs = self.generator_loss(inputs, output)
            generator_opt.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            generator_opt.step()
        if schedules:
            schedules[1].step()
            self.log("train/lr", schedules[1].get_last_lr()[0])
        shown = logs.pop(self.progress_metric, None)
        self.log_dict({"train/g_loss": g_loss, **_prefixed("train/", logs)})
        if shown is not None:
            self.log(f"train/{self.progress_metric}", shown, prog_bar=True)

        if self.generator_ema is not None:
            decay = ema_decay_at(self.global_step, self.hparams.ema_decay)
            update_ema(self.generator_ema, self.generator, decay)

    def gradient_penalty(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        structure: torch.Tensor,
        weights: torch.Tensor | None = None,
        critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """mean((‖∇ D(x̃, s)‖ − 1)²) on random interpolates x̃ of real and fake samples
        (images [B,3,H,W] or clips [B,T,3,H,W]) for the critic D (default: self.critic).

        Lazy with model.gp_every = k > 1: computed on every k-th training batch only and
        multiplied by k, so its average weight is unchanged (StyleGAN2's lazy
        regularization); 0 on the other batches, which skip the double backward.

        "image_and_structure" (the release) takes the norm over the image and the structure
        inputs, "image" over the image only. Runs in fp32 with autocast off. `weights` [B]
        weigh the samples of the mean (default: all 1).
        """
        if not self._penalty_due():
            return real.new_zeros(())
        with torch.autocast(device_type=real.device.type, enabled=False):
            alpha_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
            alpha = torch.rand(alpha_shape, device=real.device)
            image = torch.lerp(fake.float(), real.float(), alpha).requires_grad_(True)
            # detach: a fresh tensor, so the batch's own structure never starts requiring grad
            structure = structure.detach().float()
            structure.requires_grad_(self.hparams.gp_on == "image_and_structure")
            differentiable = [image, structure] if structure.requires_grad else [image]
            scores = (critic or self.critic)(image, structure)
            grads = torch.autograd.grad(scores.sum(), differentiable, create_graph=True)
            norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)
            penalty = (norm - 1).square()
            mean = penalty.mean() if weights is None else weighted_mean(penalty, weights.float())
            return mean * self.hparams.gp_every

    def _penalty_due(self) -> bool:
        """Whether this training batch computes the gradient penalty (always outside fit)."""
        every = self.hparams.gp_every
        if every == 1 or self._trainer is None or not self.trainer.training:
            return True
        return self.trainer.fit_loop.total_batch_idx % every == 0

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after unscaling the gradients (16-mixed), so clip here
        if self.hparams.grad_clip is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm"
            )

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._update_quality("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._update_quality("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val")

    def on_test_epoch_end(self) -> None:
        self._log_quality("test")

    def _update_quality(self, stage: str, batch: Mapping[str, Any]) -> None:
        for prefix, values in self.score_batch(self.generator_inputs(batch)).items():
            for name, per_sample in values.items():
                self.quality[stage][prefix + name].update(per_sample)

    def _log_quality(self, stage: str) -> None:
        results = {}
        for name, metric in self.quality[stage].items():
            results[f"{stage}/{name}"] = metric.compute()  # synchronized across processes
            metric.reset()
        if "copy_" in self.candidates:
            for metric in map(registry.get, self.quality_metrics):
                if metric.gain:
                    results[f"{stage}/{metric.key}_gain"] = metric.gain_over(
                        results[f"{stage}/{metric.key}"], results[f"{stage}/copy_{metric.key}"]
                    )
        self.log_dict(results, sync_dist=True)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["frgan_model"] = self.identity()
        checkpoint[RANDOM_STATES_KEY] = random_states()
        add_digest(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_identity(checkpoint, "the checkpoint")
        if self.verify_checkpoints:
            check_digest(checkpoint, "the checkpoint")
        # restored just before the next training step, so that nothing drawn while the run
        # starts again (e.g. models being built) shifts the numbers the steps draw
        self._random_states_to_restore = checkpoint.get(RANDOM_STATES_KEY)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._random_states_to_restore is not None:
            set_random_states(self._random_states_to_restore)
            self._random_states_to_restore = None

    def check_checkpoint(self, path: str | Path, verify: bool = True) -> dict[str, Any]:
        """Raise a clear error unless `path` is an undamaged checkpoint of this model class and
        architecture (verify=False: a damaged one is loaded with a warning); returns its content."""
        checkpoint = read_checkpoint(path)
        self.check_identity(checkpoint, str(path))
        self.verify_checkpoints = verify
        try:
            check_digest(checkpoint, str(path))
        except DamagedCheckpointError as error:
            if verify:
                raise
            log.warning("%s; loading it anyway (ckpt_verify=false)", str(error).split(";")[0])
        unfit = weights_mismatch(self.state_dict(), checkpoint.get("state_dict"))
        if unfit is not None:
            raise CheckpointError(
                f"{path}: its weights do not fit the model its identity describes ({unfit}); "
                "the file was damaged or edited: use a checkpoint as frgan.train wrote it"
            )
        return checkpoint

    def check_identity(self, checkpoint: Any, source: str) -> None:
        wanted = self.identity()
        found = checkpoint.get("frgan_model") if isinstance(checkpoint, dict) else None
        if not isinstance(found, Mapping):
            keys = (
                sorted(map(str, checkpoint))[:8]
                if isinstance(checkpoint, dict)
                else type(checkpoint).__name__
            )
            raise ValueError(
                f"{source} is not a FRGAN model checkpoint (it has {keys}); "
                f"the config asks for {describe_identity(wanted)}"
            )
        if found != wanted:
            raise ValueError(
                f"{source} holds {describe_identity(found)} but the config asks for "
                f"{describe_identity(wanted)}; pick a checkpoint of this model or set the model "
                "config to match it"
            )


def structure_identity(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The structure mesh a model was trained on, for its identity: nothing for face68 (so
    checkpoints written before meshes existed keep their identity), else the mesh and its
    landmark count."""
    mesh = hparams.get("structure_mesh", "face68")
    if mesh == "face68":
        return {}
    from frgan.data.topology import structure_mesh

    return {"structure_mesh": mesh, "landmark_points": structure_mesh(mesh).num_points}


def describe_identity(identity: Mapping[str, Any]) -> str:
    details = ", ".join(f"{k}={v!r}" for k, v in identity.items() if k != "class")
    return f"{identity.get('class')}({details})"


def cosine_factor(step: int, steps: int, final: float) -> float:
    """Learning-rate factor: 1 at step 0, falling along a half cosine to `final` at `steps`."""
    progress = min(step / steps, 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def retargeted_flags(batch: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    """Per-sample flags of the data pipeline's retargeting augmentation (all False without it)."""
    flags = batch.get("retargeted")
    if flags is None:
        return torch.zeros(like.shape[0], dtype=torch.bool, device=like.device)
    return torch.as_tensor(flags, device=like.device).bool()


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample `values` [B] or [B,1] with per-sample `weights` [B]; 0 when all
    weights are 0."""
    return (values.flatten() * weights).sum() / weights.sum().clamp_min(1.0)


def _prefixed(prefix: str, logs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + name: value for name, value in logs.items()}
