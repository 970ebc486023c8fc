"""ForecastGAN: stage 1 of FRGAN (reference section 3) — its networks and losses.

    critic:    D(fake) − D(real) + λ·GP                    (WGAN-GP, λ = 10)
               + Σ_p [D_p(fake_p) − D_p(real_p) + λ·GP_p] + Σ_p |R_p(real_p) − l_p|
    generator: −D(fake) − Σ_p α_p·D_p(fake_p) + φ·Σ_p FM_p + Σ_p β_p·|R_p(x̂_p) − l_p|
               + 3.0·(mean (1 + κ·|xt − x0| + ω·o)·|x̂ − xt| + Σ_r ρ_r·mean_r|x̂ − xt|)
               + γ·GDL(x̂, xt) + η·(1 − SSIM(x̂, xt)) + 0.05·mean|w|
where mean_r is the mean over face region r (mouth, eyes_brows: frgan/metrics/regions.py) of
the target's landmarks and ρ_r its weight (region_weights), and D_p is the critic of face part
p (mouth, eyes_brows: frgan/models/part_critic.py) on crops x_p of the frame and of st along the
target's landmarks, weighted α_p in the generator's loss (part_critics), FM_p the feature
matching of real and generated crops through D_p's features (part_feature_matching φ), R_p
the reader of part p's landmarks l_p (in crop coordinates) from a crop, trained on real crops
with the critics, weighted β_p in the generator's loss (part_readers:
frgan/models/part_reader.py), κ the change weight, o the target's mouth opening (its inner
lip ring) and ω its weight, γ the weight of the gradient difference and η the structural
dissimilarity's (frgan/models/losses.py). The release has none of them (κ = ω = γ = η = 0).
The training loop, gradient penalty, clipping, EMA, metrics and checkpoint identity live in
GANModule (frgan/models/gan.py).

Batches: dict of float32 [B,3,H,W] in [-1,1]: "x0" source frame, "s0" its structure
map, "xt" target frame, "st" target structure map; optional "lt" [B,68,2], the target's 68
landmarks, for the face-region metrics and region_weights, and "l0", the source's, which
landmark_warp needs with "lt" (extra keys are ignored).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import torch
from torch import nn

from frgan import metrics
from frgan.errors import ConfigError
from frgan.metrics.regions import REGIONS, mouth_opening_mask, region_masks
from frgan.models.critic import Critic
from frgan.models.gan import GANModule, retargeted_flags, structure_identity, weighted_mean
from frgan.models.generator import Forecast, Generator, forecast_frames
from frgan.models.init import init_weights
from frgan.models.losses import gradient_difference, structural_dissimilarity, weighted_l1
from frgan.models.part_critic import (
    PARTS,
    PartCritic,
    crop,
    feature_matching,
    part_grid,
    part_points,
)
from frgan.models.part_reader import PartReader, reading_error
from frgan.models.presets import architecture
from frgan.utils.checks import check_choice, check_int, check_number
from frgan.utils.media import side_by_side

BATCH_KEYS = ("x0", "s0", "xt", "st")


class ForecastGAN(GANModule):
    data_stage = "forecast"
    sample_columns = ("source", "target structure", "generated", "ground truth")

    def __init__(
        self,
        preset: str | Mapping = "small",
        image_size: int = 64,
        gp_weight: float = 10.0,
        gp_on: str = "image_and_structure",
        l1_weight: float = 3.0,
        mask_weight: float = 0.05,
        lr: float = 1e-4,
        generator_lr: float | None = None,
        betas: tuple[float, float] = (0.0, 0.9),
        n_critic: int = 1,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
        moving_threshold: float = metrics.DEFAULT_MOVING_THRESHOLD,
        monitor: str = "val/psnr_moving",
        monitor_mode: str = "max",
        gp_every: int = 1,
        lr_schedule: str = "constant",
        lr_final_fraction: float = 0.1,
        structure_mesh: str = "face68",
        residual: str = "paint",
        warp: bool = False,
        head_blocks: int = 0,
        part_refiners: Sequence[str] | None = None,
        region_weights: Mapping[str, float] | None = None,
        part_critics: Mapping[str, float] | None = None,
        part_feature_matching: float = 0.0,
        part_readers: Mapping[str, float] | None = None,
        change_weight: float = 0.0,
        gradient_weight: float = 0.0,
        opening_weight: float = 0.0,
        ssim_weight: float = 0.0,
        landmark_warp: bool = False,
        mouth_interior: bool = False,
    ):
        """
        preset: width preset name ("paper", "small", "tiny") or a mapping
            {base, max_channels, latent}; image_size: 8..256 sizes the depth rule accepts.
        gp_on: "image_and_structure" (the release: gradient norm over all 6 critic input
            channels) or "image" (the standard WGAN-GP).
        generator_lr: the generator's learning rate (null: lr, the critic's).
        n_critic: critic steps per generator step. ema_decay: e.g. 0.999 keeps an EMA copy
            of the generator for validation and sampling; null = off.
        grad_clip: max gradient norm for both networks; null = off.
        moving_threshold: |xt − x0| above which a pixel belongs to the moving region.
        monitor, monitor_mode: the metric for checkpointing and sweeps (read by the configs).
        gp_every: the gradient penalty on every k-th batch only, weighted k (lazy).
        lr_schedule: "constant" or "cosine" (both networks' rates fall along a half cosine
            to lr_final_fraction·lr over the fit).
        structure_mesh: the data's structure mesh (data.structure_mesh), part of the identity.
        residual: "paint" (the release: the head paints r from scratch) or "edit" (r is an
            edit of the source frame), see frgan/models/generator.py; part of the identity.
        warp: the generator also predicts a flow that moves the source frame before it is
            composited (and edited); part of the identity.
        head_blocks: residual blocks at full size before the generator's head (0: the
            release's linear head), see frgan/models/generator.py; part of the identity.
        part_refiners: face parts (mouth, eyes_brows) whose window of the frame a small network
            of its own repaints at full size (frgan/models/part_refiner.py); part of the identity.
        landmark_warp: the flow starts from the thin-plate spline that carries the source's
            landmarks "l0" onto the target's "lt" (both then needed in every batch), see
            frgan/models/generator.py; part of the identity.
        mouth_interior: a learnt texture of the mouth's inside fills the target's mouth opening
            in the moved source where the source shows none (frgan/models/mouth_interior.py;
            needs "l0" and "lt"); part of the identity.
        region_weights: {region: weight} adds weight·(mean |x̂ − xt| over that face region of
            the target's landmarks) to the L1 term, per region (REGIONS): a mouth a few
            hundred pixels large then counts as much as the whole frame does at weight 1.
        part_critics: {part: weight} gives each face part (PARTS: mouth, eyes_brows) a critic
            of its own on crops along the target's landmarks, its score weighted `weight` in
            the generator's loss (the whole-frame critic's weighs 1); part of the identity.
        part_feature_matching: weight of the part critics' feature matching in the generator's
            loss: mean |f(real part) − f(generated part)| over each critic's feature maps, on
            paired samples (0 = off).
        part_readers: {part: weight} gives each face part a reader of its landmarks, trained
            on real crops with the critics, and adds weight·mean |reader(generated crop) − the
            target's part landmarks| to the generator's loss (frgan/models/part_reader.py);
            part of the identity.
        change_weight: κ in the L1 term's per-pixel weight 1 + κ·|xt − x0| (channel mean), so
            the pixels the target changes lead (frgan/models/losses.py); 0 = plain L1.
        gradient_weight: weight of the gradient difference loss mean ||∇x̂| − |∇xt|| (0 = off).
        opening_weight: ω added to the L1 term's per-pixel weight inside the target's mouth
            opening (its inner lip ring, frgan/metrics/regions.py): the teeth and cavity a
            smile or a dropped jaw shows lead; 0 = off.
        ssim_weight: weight of the structural dissimilarity 1 − SSIM(x̂, xt) (0 = off).
        """
        super().__init__()
        self.region_weights = _check_weights("model.region_weights", region_weights, REGIONS)
        self.part_weights = _check_weights("model.part_critics", part_critics, tuple(PARTS))
        self.reader_weights = _check_weights("model.part_readers", part_readers, tuple(PARTS))
        check_number("model.part_feature_matching", part_feature_matching, least=0)
        check_int("model.head_blocks", head_blocks, 0)
        check_choice("model.landmark_warp", landmark_warp, (False, True))
        check_choice("model.mouth_interior", mouth_interior, (False, True))
        check_number("model.change_weight", change_weight, least=0)
        check_number("model.gradient_weight", gradient_weight, least=0)
        check_number("model.opening_weight", opening_weight, least=0)
        check_number("model.ssim_weight", ssim_weight, least=0)
        if part_feature_matching and not self.part_weights:
            raise ConfigError(
                "model.part_feature_matching matches the features of the part critics: set "
                "model.part_critics too, e.g. {mouth: 1.0, eyes_brows: 1.0}"
            )
        self.save_hyperparameters()
        self.check_training_options()
        arch = architecture(preset, image_size)
        self.generator = Generator(
            arch,
            residual,
            warp,
            head_blocks,
            tuple(part_refiners or ()),
            landmark_warp,
            mouth_interior,
        )
        self.critic = Critic(arch)
        self.part_critics = nn.ModuleDict(
            {
                part: PartCritic(2 * arch.channels[0], arch.channels[-1])
                for part in self.part_weights
            }
        )
        init_weights(self.generator)
        init_weights(self.critic)
        self.part_readers = nn.ModuleDict(
            {
                part: PartReader(part, image_size, 2 * arch.channels[0], arch.channels[-1])
                for part in self.reader_weights
            }
        )
        init_weights(self.part_critics)
        init_weights(self.part_readers)
        self.generator.zero_flow()
        self.init_ema()

    def forward(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        st: torch.Tensor,
        l0: torch.Tensor | None = None,
        lt: torch.Tensor | None = None,
    ) -> Forecast:
        return self.sampling_generator(x0, s0, st, l0, lt)

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        return chain(
            self.critic.parameters(), self.part_critics.parameters(), self.part_readers.parameters()
        )

    # ------------------------------------------------------------------ losses
    def run_generator(self, inputs: Mapping[str, torch.Tensor], generator: nn.Module) -> Forecast:
        return generator(
            inputs["x0"], inputs["s0"], inputs["st"], inputs.get("l0"), inputs.get("lt")
        )

    def critic_loss(self, inputs, output: Forecast):
        xt, st, paired = inputs["xt"], inputs["st"], inputs["paired"]
        fake = output.frame.detach()
        wdist = weighted_mean(self.critic(xt, st), paired) - self.critic(fake, st).mean()
        gp = self.gradient_penalty(xt, fake, st, weights=paired)
        loss, logs = -wdist + self.hparams.gp_weight * gp, {"wdist": wdist, "gp": gp}
        for part, critic in self.part_critics.items():
            grid, real_p, st_p, _ = self._part_views(inputs)[part]
            fake_p = crop(fake, grid)
            wdist_p = weighted_mean(critic(real_p, st_p), paired) - critic(fake_p, st_p).mean()
            gp_p = self.gradient_penalty(real_p, fake_p, st_p, weights=paired, critic=critic)
            loss = loss - wdist_p + self.hparams.gp_weight * gp_p
            logs |= {f"wdist_{part}": wdist_p, f"gp_{part}": gp_p}
        for part, reader in self.part_readers.items():
            _, real_p, _, points_p = self._part_views(inputs)[part]
            error = weighted_mean(reading_error(reader, real_p, points_p), paired)
            loss, logs[f"reader_{part}"] = loss + error, error
        return loss, logs

    def generator_loss(self, inputs, output: Forecast):
        hp = self.hparams
        adversarial = -self.critic(output.frame, inputs["st"]).mean()
        logs = {}
        views = self._part_views(inputs)
        fakes = {part: crop(output.frame, grid) for part, (grid, *_) in views.items()}
        for part, weight in self.part_weights.items():
            _, real_p, st_p, _ = views[part]
            fake_p = fakes[part]
            adversarial = adversarial - weight * self.part_critics[part](fake_p, st_p).mean()
            if hp.part_feature_matching:
                matching = feature_matching(self.part_critics[part], real_p, fake_p, st_p)
                logs[f"matching_{part}"] = weighted_mean(matching, inputs["paired"])
        size = inputs["xt"].shape[-1]
        opening = mouth_opening_mask(inputs["lt"], size, size) if hp.opening_weight else None
        per_sample_l1 = weighted_l1(
            output.frame, inputs["xt"], inputs["x0"], hp.change_weight, opening, hp.opening_weight
        )
        if self.region_weights:
            masks = region_masks(inputs["lt"], size, size)
            for region, weight in self.region_weights.items():
                error = metrics.mean_abs_error(output.frame, inputs["xt"], masks[region])
                per_sample_l1 = per_sample_l1 + weight * error.nan_to_num(0.0)
        l1 = weighted_mean(per_sample_l1, inputs["paired"])
        mask = output.mask.abs().mean()
        loss = adversarial + hp.l1_weight * l1 + hp.mask_weight * mask
        matchings = [value for name, value in logs.items() if name.startswith("matching_")]
        loss = loss + hp.part_feature_matching * sum(matchings)
        if hp.gradient_weight:
            gradients = gradient_difference(output.frame, inputs["xt"])
            logs["gradient_difference"] = weighted_mean(gradients, inputs["paired"])
            loss = loss + hp.gradient_weight * logs["gradient_difference"]
        if hp.ssim_weight:
            dissimilarity = structural_dissimilarity(output.frame, inputs["xt"])
            logs["dssim"] = weighted_mean(dissimilarity, inputs["paired"])
            loss = loss + hp.ssim_weight * logs["dssim"]
        for part, weight in self.reader_weights.items():
            error = reading_error(self.part_readers[part], fakes[part], views[part][3])
            misread = weighted_mean(error, inputs["paired"])
            loss, logs[f"misread_{part}"] = loss + weight * misread, misread
        return loss, {"l1": l1, "mask": mask, **logs}

    def _part_views(self, inputs: dict[str, Any]) -> dict[str, tuple[torch.Tensor, ...]]:
        """{part: (crop grid, crop of xt, crop of st, the part's landmarks in crop
        coordinates)} of a batch, made once: the critic's and the generator's steps of a batch
        both use them."""
        parts = {**self.part_weights, **self.reader_weights}
        if not parts:
            return {}  # no landmarks needed
        if "part_views" not in inputs:
            size, landmarks = inputs["xt"].shape[-1], inputs["lt"]
            views = {}
            for part in parts:
                grid = part_grid(landmarks, part, size)
                crops = (crop(inputs["xt"], grid), crop(inputs["st"], grid))
                views[part] = (grid, *crops, part_points(landmarks, part))
            inputs["part_views"] = views
        return inputs["part_views"]

    def generator_inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The batch's tensors, checked; "paired" [B] is 0 for retargeted samples: their
        target structure is another subject's expression, so their xt is not a picture of st
        and they train only through the critic, as fakes (weights rather than indexing keep
        every rank's graph the same under DDP)."""
        inputs = self.batch_tensors(batch, BATCH_KEYS)
        target = ("the target's 68 landmarks 'lt'", ("lt",))
        both = ("the source's and the target's 68 landmarks 'l0' and 'lt'", ("l0", "lt"))
        for on, option, off, (needed, keys) in (
            (self.region_weights, "region_weights", "null", target),
            (self.part_weights, "part_critics", "null", target),
            (self.reader_weights, "part_readers", "null", target),
            (self.hparams.opening_weight, "opening_weight", "0", target),
            (self.generator.landmark_warp, "landmark_warp", "false", both),
            (self.generator.mouth_interior is not None, "mouth_interior", "false", both),
        ):
            if on and not set(keys) <= set(batch):
                raise ValueError(
                    f"model.{option} needs batches with {needed} [B,68,2] (frgan.data's "
                    f"forecast pairs carry them); set model.{option}={off}"
                )
        for key in ("l0", "lt"):
            if key in batch:
                inputs[key] = batch[key]
        inputs["paired"] = (~retargeted_flags(batch, inputs["x0"])).to(inputs["x0"].dtype)
        return inputs

    # ------------------------------------------------------------------ evaluation
    def score_batch(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Per-pair frame metrics of the forecast and of copying x0 (NaN for pairs where
        nothing moves, like t = 0)."""
        x0, xt, landmarks = inputs["x0"], inputs["xt"], inputs.get("lt")
        pred = self(x0, inputs["s0"], inputs["st"], inputs.get("l0"), landmarks).frame
        threshold = self.hparams.moving_threshold
        return {
            prefix: metrics.frame_quality(frame, xt, x0, threshold, landmarks)
            for prefix, frame in (("", pred), ("copy_", x0))
        }

    def select_sample(self, loader, max_frames: int) -> dict[str, torch.Tensor] | None:
        """Up to max_frames pairs of the loader's first take (pairs share x0), ordered by
        frame t when the batches carry "t"."""
        if loader is None:
            return None
        pairs: list[dict[str, torch.Tensor]] = []
        for batch in loader:
            for b in range(batch["x0"].shape[0]):
                pair = {k: batch[k][b] for k in (*BATCH_KEYS, "l0", "lt") if k in batch}
                pair["t"] = torch.as_tensor(batch["t"][b] if "t" in batch else len(pairs))
                if pairs and not torch.equal(pair["x0"], pairs[0]["x0"]):
                    return _stack_by_time(pairs)  # the next take has begun
                pairs.append(pair)
                if len(pairs) == max_frames:
                    return _stack_by_time(pairs)
        return _stack_by_time(pairs) if pairs else None

    def draw_sample(self, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[T,3,H,4W]: source | target structure | generated | ground truth per frame."""
        generated = self(
            sample["x0"], sample["s0"], sample["st"], sample.get("l0"), sample.get("lt")
        ).frame
        return side_by_side([sample["x0"], sample["st"], generated, sample["xt"]])

    @torch.no_grad()
    def animate(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        structures: torch.Tensor,
        l0: torch.Tensor | None = None,
        landmarks: torch.Tensor | None = None,
        chunk: int = 64,
    ) -> dict[str, torch.Tensor]:
        """Every frame forecast independently from the source (reference section 6)."""
        return {"forecast": forecast_frames(self, x0, s0, structures, chunk, l0, landmarks)}

    def identity(self) -> dict[str, Any]:
        preset = self.hparams.preset
        return {
            "class": type(self).__name__,
            "preset": dict(preset) if isinstance(preset, Mapping) else preset,
            "image_size": self.hparams.image_size,
            "ema": self.hparams.ema_decay is not None,
            # only when not the release's, so checkpoints written before the options match
            **({"residual": "edit"} if self.hparams.get("residual") == "edit" else {}),
            **({"warp": True} if self.hparams.get("warp") else {}),
            **(
                {"head_blocks": self.hparams.head_blocks} if self.hparams.get("head_blocks") else {}
            ),
            **(
                {"part_refiners": list(self.generator.part_refiners)}
                if self.generator.part_refiners
                else {}
            ),
            **({"landmark_warp": True} if self.generator.landmark_warp else {}),
            **({"mouth_interior": True} if self.generator.mouth_interior is not None else {}),
            **structure_identity(self.hparams),
            **({"part_critics": sorted(self.part_weights)} if self.part_weights else {}),
            **({"part_readers": sorted(self.reader_weights)} if self.reader_weights else {}),
        }


def _check_weights(
    key: str, weights: Mapping[str, float] | None, names: tuple[str, ...]
) -> dict[str, float]:
    """{name: weight > 0}; ConfigError naming the key for an unknown name or a bad weight."""
    checked = {}
    for name, weight in dict(weights or {}).items():
        check_choice(key, name, names)
        check_number(f"{key}.{name}", weight, least=0)
        if weight > 0:
            checked[name] = float(weight)
    return checked


def _stack_by_time(pairs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    pairs = sorted(pairs, key=lambda pair: int(pair["t"]))
    return {k: torch.stack([pair[k] for pair in pairs]) for k in pairs[0]}
