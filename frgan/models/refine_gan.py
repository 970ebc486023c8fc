"""Stage 2 of FRGAN: RefineGAN turns independently forecast frames into a consistent clip.

A frozen ForecastGAN generator (model.forecast_ckpt, forecaster.py) forecasts every frame of
a clip from the source frame, on the fly; a 3D-convolutional refine generator corrects the
forecast clip (refine_generator.py) and a spatio-temporal critic (clip_critic.py) scores
clips against the structure clip. The forecaster's weights live in this module's
state_dict and its identity in the hyper-parameters, so a refine checkpoint is
self-contained: loading it needs no forecast file.

Adversarial objective (model.adversarial):
  wgan_gp: critic D(refined) − D(real) + gp_weight·GP, as in stage 1;
  ranking: the journal version's ranking — the critic scores real above refined above
           forecast by margins: relu(m_real − (D(real) − D(refined)))
           + relu(m_forecast − (D(refined) − D(forecast))) + gp_weight·GP.
The generator's adversarial term is −D(refined) under both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

from frgan import metrics
from frgan.errors import ConfigError
from frgan.models.clip_architecture import clip_architecture
from frgan.models.clip_critic import ClipCritic
from frgan.models.forecaster import build_forecaster, load_forecaster, resolve_forecast_ckpt
from frgan.models.gan import GANModule, retargeted_flags, structure_identity, weighted_mean
from frgan.models.generator import forecast_frames
from frgan.models.refine_generator import OUTPUTS, Refined, RefineGenerator
from frgan.utils.checks import check_choice, check_number
from frgan.utils.media import side_by_side

IMAGE_KEYS, CLIP_KEYS = ("x0", "s0"), ("frames", "structures")
BATCH_KEYS = (*IMAGE_KEYS, *CLIP_KEYS)
ADVERSARIAL = ("wgan_gp", "ranking")
MIN_FRAMES = 4
FORECAST_CHUNK = 256  # frames per forecaster call


class RefineGAN(GANModule):
    data_stage = "refine"
    candidates = ("", "forecast_", "copy_")
    metric_levels = (metrics.FRAME, metrics.CLIP)
    sample_columns = ("structure", "ground truth", "forecast", "refined")

    def __init__(
        self,
        forecast_ckpt: str = "best",
        forecast_runs: str = "outputs",
        forecaster: Mapping | None = None,
        preset: str | Mapping = "small",
        image_size: int = 64,
        output: str = "mask",
        forecast_smoothing: float | None = None,
        adversarial: str = "wgan_gp",
        ranking_margins: tuple[float, float] = (1.0, 1.0),
        gp_weight: float = 10.0,
        gp_on: str = "image_and_structure",
        adversarial_weight: float = 1.0,
        l1_weight: float = 10.0,
        temporal_weight: float = 10.0,
        mask_weight: float = 0.05,
        lr: float = 4e-4,
        generator_lr: float | None = None,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 1,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
        moving_threshold: float = metrics.DEFAULT_MOVING_THRESHOLD,
        monitor: str = "val/temporal_error",
        monitor_mode: str = "min",
        gp_every: int = 1,
        lr_schedule: str = "constant",
        lr_final_fraction: float = 0.1,
        structure_mesh: str = "face68",
    ):
        """
        forecast_ckpt: the stage-1 checkpoint (file, run folder, or best / last of the newest
            forecast run under forecast_runs).
        forecaster: set by a refine checkpoint (the forecaster's identity); leave null.
        preset: refine widths: paper | small | tiny or {base, max_channels}.
        output: "mask" (x = w·r + (1−w)·forecast) or "additive" (x = forecast + Δ).
        forecast_smoothing: null, or the starting strength in [0, 1] of a learnt temporal
            low-pass of the forecast that the correction is applied to (refine_generator.py).
        adversarial: "wgan_gp" or "ranking" (margins: real−refined, refined−forecast).
        l1_weight: L1 to the ground truth on every frame; temporal_weight: L1 between the
            generated and the true frame-to-frame changes (the temporal error, as a loss);
            mask_weight: mean |w| (mask output only); adversarial_weight: of −D(refined)
            (0: the generator trains on L1 and temporal error only).
        generator_lr: the refine generator's learning rate (null: lr, the critic's).
        gp_every, lr_schedule, lr_final_fraction, structure_mesh and the rest as in
            ForecastGAN; the forecaster must have been trained on the same structure mesh.
        """
        super().__init__()
        self.save_hyperparameters()
        self.check_training_options()
        check_choice("model.output", output, OUTPUTS)
        check_choice("model.adversarial", adversarial, ADVERSARIAL)
        if len(ranking_margins) != 2 or min(ranking_margins) < 0:
            raise ConfigError(
                f"model.ranking_margins must be two numbers >= 0 (real-refined, "
                f"refined-forecast), got {ranking_margins!r}"
            )
        for key, value in (
            ("adversarial_weight", adversarial_weight),
            ("l1_weight", l1_weight),
            ("temporal_weight", temporal_weight),
            ("mask_weight", mask_weight),
        ):
            check_number(f"model.{key}", value, least=0.0)
        arch = clip_architecture(preset, image_size)
        if forecaster is None:
            path = resolve_forecast_ckpt(forecast_ckpt, forecast_runs)
            self.forecaster, identity = load_forecaster(path, image_size)
            self.hparams.forecaster = {**identity, "source": str(path)}
        else:
            self.forecaster = build_forecaster(forecaster)
        forecaster_mesh = self.hparams.forecaster.get("structure_mesh", "face68")
        if forecaster_mesh != structure_mesh:
            raise ConfigError(
                f"model.forecast_ckpt was trained on data.structure_mesh={forecaster_mesh}, but "
                f"this run's data.structure_mesh={structure_mesh}; refine on the forecaster's mesh "
                "or train a forecast stage on this one"
            )
        self.generator = RefineGenerator(arch, output, forecast_smoothing)
        self.critic = ClipCritic(arch)
        self.init_ema()

    def train(self, mode: bool = True) -> RefineGAN:
        super().train(mode)
        self.forecaster.eval()  # frozen: its batch norm keeps the statistics it was trained with
        return self

    def forward(
        self, forecast: torch.Tensor, structures: torch.Tensor, x0: torch.Tensor
    ) -> Refined:
        return self.sampling_generator(forecast, structures, x0)

    @torch.no_grad()
    def forecast(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        structures: torch.Tensor,
        l0: torch.Tensor | None = None,
        landmarks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every frame of structures [B,T,3,H,W] forecast independently from x0 [B,3,H,W]
        (l0 [B,68,2], landmarks [B,T,68,2]: the maps' landmarks, see GANModule.animate)."""
        return forecast_frames(self.forecaster, x0, s0, structures, FORECAST_CHUNK, l0, landmarks)

    # ------------------------------------------------------------------ losses
    def run_generator(self, inputs: Mapping[str, torch.Tensor], generator: nn.Module) -> Refined:
        return generator(inputs["forecast"], inputs["structures"], inputs["x0"])

    def critic_loss(self, inputs, output: Refined):
        hp = self.hparams
        real, structures, paired = inputs["frames"], inputs["structures"], inputs["paired"]
        fake = output.clip.detach()
        real_score, fake_score = self.critic(real, structures), self.critic(fake, structures)
        wdist = weighted_mean(real_score, paired) - fake_score.mean()
        gp = self.gradient_penalty(real, fake, structures, weights=paired)
        if hp.adversarial == "wgan_gp":
            return -wdist + hp.gp_weight * gp, {"wdist": wdist, "gp": gp}
        margin_real, margin_forecast = hp.ranking_margins
        forecast_score = self.critic(inputs["forecast"], structures)
        above_refined = weighted_mean(F.relu(margin_real - (real_score - fake_score)), paired)
        above_forecast = F.relu(margin_forecast - (fake_score - forecast_score)).mean()
        loss = above_refined + above_forecast + hp.gp_weight * gp
        logs = {"wdist": wdist, "gp": gp, "rank_real": above_refined}
        return loss, {**logs, "rank_forecast": above_forecast}

    def generator_loss(self, inputs, output: Refined):
        hp = self.hparams
        frames, paired = inputs["frames"], inputs["paired"]
        l1 = weighted_mean((output.clip - frames).abs().mean(dim=(1, 2, 3, 4)), paired)
        temporal = weighted_mean(metrics.temporal_error(output.clip, frames), paired)
        loss = hp.l1_weight * l1 + hp.temporal_weight * temporal
        logs = {"l1": l1, "temporal": temporal}
        if hp.adversarial_weight > 0:
            logs["adversarial"] = -self.critic(output.clip, inputs["structures"]).mean()
            loss = loss + hp.adversarial_weight * logs["adversarial"]
        if self.generator.smoothing is not None:
            logs["smoothing"] = self.generator.smoothing.detach()
        if output.mask is not None:
            logs["mask"] = output.mask.abs().mean()
            loss = loss + hp.mask_weight * logs["mask"]
        return loss, logs

    def generator_inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The batch's tensors, checked, plus the forecast clip; "paired" [B] is 0 for
        retargeted clips (their frames are not pictures of their structures: they train
        only through the critic, as fakes)."""
        inputs = self.batch_tensors(
            batch,
            IMAGE_KEYS,
            CLIP_KEYS,
            "x0, s0 [B,3,H,W], frames, structures [B,T,3,H,W]; data.stage=refine",
        )
        for key in CLIP_KEYS:
            if batch[key].shape[1] < MIN_FRAMES:
                raise ValueError(
                    f"batch[{key!r}] has {batch[key].shape[1]} frames; the refine stage needs "
                    f"clips of >= {MIN_FRAMES} frames: set data.clip_length >= {MIN_FRAMES}"
                )
        if "landmarks" in batch:
            inputs["landmarks"] = batch["landmarks"]
        inputs["forecast"] = self.forecast(
            batch["x0"], batch["s0"], batch["structures"], batch.get("l0"), batch.get("landmarks")
        )
        inputs["paired"] = (~retargeted_flags(batch, batch["x0"])).to(batch["x0"].dtype)
        return inputs

    # ------------------------------------------------------------------ evaluation
    def score_batch(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Every frame metric (source = x0; NaN where nothing moves) and clip metric of the
        refined clip, the forecast and copying the first frame."""
        x0, frames = inputs["x0"], inputs["frames"]
        refined = self.run_generator(inputs, self.sampling_generator).clip
        copy = repeat(x0, "b c h w -> b t c h w", t=frames.shape[1])
        threshold, landmarks = self.hparams.moving_threshold, inputs.get("landmarks")
        return {
            prefix: metrics.score_clip(clip, frames, x0, threshold, landmarks)
            for prefix, clip in (("", refined), ("forecast_", inputs["forecast"]), ("copy_", copy))
        }

    def select_sample(self, loader, max_frames: int) -> dict[str, torch.Tensor] | None:
        """The first clip of the loader, cut to max_frames, with its landmarks when the batch
        has them (a landmark-warping forecaster needs them)."""
        if loader is None:
            return None
        for batch in loader:
            keys = [*BATCH_KEYS, *(key for key in ("l0", "landmarks") if key in batch)]
            sample = {key: batch[key][0] for key in keys}
            for key in ("frames", "structures", "landmarks"):
                if key in sample:
                    sample[key] = sample[key][:max_frames]
            return sample
        return None

    def draw_sample(self, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[T,3,H,4W]: structure | ground truth | forecast | refined per frame."""
        points = [sample[k][None] if k in sample else None for k in ("l0", "landmarks")]
        clips = self.animate(
            sample["x0"][None], sample["s0"][None], sample["structures"][None], *points
        )
        return side_by_side(
            [sample["structures"], sample["frames"], clips["forecast"][0], clips["refined"][0]]
        )

    @torch.no_grad()
    def animate(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        structures: torch.Tensor,
        l0: torch.Tensor | None = None,
        landmarks: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Forecast every frame, then refine the whole clip at once: the refiner is fully
        convolutional over time, so any length T works (no windows, no seams)."""
        forecast = self.forecast(x0, s0, structures, l0, landmarks)
        return {"forecast": forecast, "refined": self(forecast, structures, x0).clip}

    def identity(self) -> dict[str, Any]:
        hp = self.hparams
        forecaster = {k: v for k, v in hp.forecaster.items() if k != "source"}
        return {
            "class": type(self).__name__,
            "preset": dict(hp.preset) if isinstance(hp.preset, Mapping) else hp.preset,
            "image_size": hp.image_size,
            "ema": hp.ema_decay is not None,
            "output": hp.output,
            "forecaster": forecaster,
            # only when set, so refine checkpoints written before the option keep loading
            **({"forecast_smoothing": True} if hp.get("forecast_smoothing") is not None else {}),
            **structure_identity(hp),
        }
