"""Every quality metric of FRGAN, declared once, and the functions that score with them.

An entry says how a metric is computed and how it is shown: its key, label and unit, number
format, whether higher or lower is better, its level ("frame": one value per frame, for the
forecast pairs of stage 1 and every frame of a clip; "clip": one value per clip, refine stage
and frgan.evaluate), the face region it covers, whether its gain over copying the first frame
is logged and which sweep-summary columns show it. Everything that lists metrics reads METRICS
when it runs: the stages' validation and test logging (with the copy_ / forecast_ baselines
and the <key>_gain columns), frgan.evaluate's metrics.json and report.md, the two-stage
summary and the sweep summary. A new metric is one entry here.

Frame metrics are NaN for frames with no moving pixel (t = 0 of a take tells nothing about
motion and would give copying an infinite PSNR). Region metrics (frgan.metrics.regions, masks
from the target's 68 landmarks) cover the whole region and are NaN where nothing in the region
moves, or without landmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

import torch

from frgan.metrics.image import (
    DEFAULT_MOVING_THRESHOLD,
    masked_mean,
    mean_abs_error,
    moving_mask,
    psnr,
    rim_mask,
    ssim_map,
)
from frgan.metrics.regions import region_masks
from frgan.metrics.video import flicker, temporal_error

FRAME, CLIP = "frame", "clip"
LEVELS = (FRAME, CLIP)
SWEEP_COLUMNS = ("val", "test", "val_gain", "test_gain")


class Frames:
    """What a frame metric reads: predicted, true and source frames [B,3,H,W], the moving
    threshold and the targets' 68 landmarks [B,68,2] (None: region metrics are NaN). What
    several metrics share (the moving mask, the SSIM map, the region masks) is computed once,
    on first use."""

    def __init__(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        source: torch.Tensor,
        threshold: float = DEFAULT_MOVING_THRESHOLD,
        landmarks: torch.Tensor | None = None,
    ):
        self.pred, self.target, self.source = pred, target, source
        self.threshold, self.landmarks = threshold, landmarks

    @cached_property
    def moving(self) -> torch.Tensor:
        return moving_mask(self.source, self.target, self.threshold)

    @cached_property
    def has_motion(self) -> torch.Tensor:
        return self.moving.flatten(1).any(dim=1)

    @cached_property
    def similarity(self) -> torch.Tensor:
        return ssim_map(self.pred, self.target)

    @cached_property
    def regions(self) -> dict[str, torch.Tensor] | None:
        if self.landmarks is None:
            return None
        height, width = self.target.shape[-2:]
        return region_masks(self.landmarks.to(self.target.device), height, width)

    def undefined(self) -> torch.Tensor:
        return torch.full((self.pred.shape[0],), float("nan"), device=self.pred.device)


@dataclass(frozen=True)
class Clips:
    """What a clip metric reads: predicted and true clips [B,T,3,H,W], the moving threshold
    and the true clips' 68 landmarks [B,T,68,2] (or None)."""

    pred: torch.Tensor
    target: torch.Tensor
    threshold: float = DEFAULT_MOVING_THRESHOLD
    landmarks: torch.Tensor | None = None


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    compute: Callable[..., torch.Tensor]  # FRAME: (Frames) -> [B]; CLIP: (Clips) -> [B]
    level: str = FRAME
    unit: str = ""
    fmt: str = "{:.4f}"
    higher_is_better: bool = True
    region: str | None = None  # a face region of frgan.metrics.regions, None: not restricted
    gain: bool = False  # log <key>_gain: how far the model beats copying the first frame
    sweep: tuple[str, ...] = ()  # sweep-summary columns, of SWEEP_COLUMNS

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"metric {self.key}: level must be one of {LEVELS}")
        if not set(self.sweep) <= set(SWEEP_COLUMNS):
            raise ValueError(f"metric {self.key}: sweep columns must be of {SWEEP_COLUMNS}")

    @property
    def header(self) -> str:
        """The report's column header, e.g. "PSNR moving dB ↑"."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label}{unit} {'↑' if self.higher_is_better else '↓'}"

    @property
    def row_label(self) -> str:
        """The summary's row label, e.g. "PSNR moving (dB)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def gain_over(self, model: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
        """How much better than copying: positive when the model beats it."""
        return model - copy if self.higher_is_better else copy - model


def _psnr(frames: Frames, mask: str | None = None) -> torch.Tensor:
    return psnr(frames.pred, frames.target, frames.moving if mask == "moving" else None)


def _ssim(frames: Frames, mask: str | None = None) -> torch.Tensor:
    return masked_mean(frames.similarity, frames.moving if mask == "moving" else None)


def _rim_error(frames: Frames) -> torch.Tensor:
    return mean_abs_error(frames.pred, frames.target, rim_mask(frames.moving))


def _in_region(
    measure: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    region: str,
    frames: Frames,
) -> torch.Tensor:
    """`measure(pred, target, mask)` over a face region; NaN where nothing in it moves."""
    if frames.regions is None:
        return frames.undefined()
    mask = frames.regions[region]
    moves = (mask & frames.moving).flatten(1).any(dim=1)
    return measure(frames.pred, frames.target, mask).masked_fill(~moves, float("nan"))


def _region_metrics(region: str, label: str) -> tuple[Metric, Metric]:
    return (
        Metric(
            f"psnr_{region}",
            f"PSNR {label}",
            partial(_in_region, psnr, region),
            unit="dB",
            fmt="{:.2f}",
            region=region,
            gain=True,
            sweep=("val_gain", "test_gain"),
        ),
        Metric(
            f"mae_{region}",
            f"MAE {label}",
            partial(_in_region, mean_abs_error, region),
            higher_is_better=False,
            region=region,
            gain=True,
        ),
    )


METRICS: tuple[Metric, ...] = (
    Metric("psnr", "PSNR", _psnr, unit="dB", fmt="{:.2f}", gain=True),
    Metric("ssim", "SSIM", _ssim, fmt="{:.3f}", gain=True),
    Metric(
        "psnr_moving",
        "PSNR moving",
        partial(_psnr, mask="moving"),
        unit="dB",
        fmt="{:.2f}",
        gain=True,
        sweep=SWEEP_COLUMNS,
    ),
    Metric(
        "ssim_moving",
        "SSIM moving",
        partial(_ssim, mask="moving"),
        fmt="{:.3f}",
        gain=True,
        sweep=("val", "test"),
    ),
    Metric("rim_error", "rim error (halos)", _rim_error, higher_is_better=False, sweep=("test",)),
    *_region_metrics("mouth", "mouth"),
    *_region_metrics("eyes_brows", "eyes+brows"),
    *_region_metrics("face_rest", "rest of face"),
    Metric(
        "temporal_error",
        "temporal error",
        lambda clips: temporal_error(clips.pred, clips.target),
        level=CLIP,
        higher_is_better=False,
        sweep=("val", "test"),
    ),
    Metric(
        "flicker",
        "flicker",
        lambda clips: flicker(clips.pred, clips.target, clips.threshold),
        level=CLIP,
        higher_is_better=False,
    ),
)


def select(*levels: str) -> tuple[Metric, ...]:
    """The metrics of the given levels (all without), in declaration order."""
    return tuple(m for m in METRICS if not levels or m.level in levels)


def keys(*levels: str) -> tuple[str, ...]:
    return tuple(m.key for m in select(*levels))


def get(key: str) -> Metric:
    for metric in METRICS:
        if metric.key == key:
            return metric
    raise KeyError(f"no metric {key!r}; known: {', '.join(keys())}")


def sweep_columns() -> tuple[str, ...]:
    """The logged names a sweep summary shows beside the optimized metric (val, then test)."""
    columns = []
    for stage in ("val", "test"):
        for metric in METRICS:
            if stage in metric.sweep:
                columns.append(f"{stage}/{metric.key}")
            if f"{stage}_gain" in metric.sweep:
                columns.append(f"{stage}/{metric.key}_gain")
    return tuple(columns)


def frame_quality(
    pred: torch.Tensor,
    target: torch.Tensor,
    source: torch.Tensor,
    threshold: float = DEFAULT_MOVING_THRESHOLD,
    landmarks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every frame metric [B] of `pred` against `target` [B,3,H,W], the moving region being
    where target differs from `source`; region metrics from the targets' 68 landmarks
    [B,68,2]. NaN for frames with no moving pixel."""
    frames = Frames(pred, target, source, threshold, landmarks)
    nothing_moves = ~frames.has_motion
    return {
        m.key: m.compute(frames).masked_fill(nothing_moves, float("nan")) for m in select(FRAME)
    }


def score_clip(
    clip: torch.Tensor,
    target: torch.Tensor,
    source: torch.Tensor,
    threshold: float = DEFAULT_MOVING_THRESHOLD,
    landmarks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric of clips [B,T,3,H,W] against the true clips, every frame against the
    source frames [B,3,H,W]: frame metrics [B,T] (frame by frame, so memory stays that of one
    frame per clip), clip metrics [B]. landmarks: the true clips' 68 points [B,T,68,2]."""
    per_frame = [
        frame_quality(
            clip[:, t],
            target[:, t],
            source,
            threshold,
            None if landmarks is None else landmarks[:, t],
        )
        for t in range(clip.shape[1])
    ]
    scores = {key: torch.stack([f[key] for f in per_frame], dim=1) for key in keys(FRAME)}
    clips = Clips(clip, target, threshold, landmarks)
    scores.update({m.key: m.compute(clips) for m in select(CLIP)})
    return scores
