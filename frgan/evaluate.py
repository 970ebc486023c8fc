"""Evaluate a trained model on the held-out test subjects against copying the first frame.

python -m frgan.evaluate ckpt=<checkpoint or run folder>            # synthetic test split
python -m frgan.evaluate ckpt=<...> data=mug data.raw_dir=<MUG root> evaluation.frames=32
python -m frgan.evaluate ckpt=<...> evaluation=no_fvd               # no FVD: frame metrics, expression analysis

Every method is a clip per test video: "copy_first_frame" (the source frame repeated) and
whatever the model's `animate` returns ("forecast"; a two-stage model adds "refined"). Writes
metrics.json, report.md, psnr.png, ssim.png and samples.gif into the run folder, and
the expression analysis (frgan/evaluation/expression.py) with its plots unless
evaluation.expression=false.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frgan.errors import ConfigError
from frgan.evaluation.expression import expression_settings, run_expression_protocol
from frgan.evaluation.expression_report import expression_key_lines
from frgan.evaluation_report import write_report
from frgan.inference.model import training_setting
from frgan.metrics import DEFAULT_MOVING_THRESHOLD, registry
from frgan.metrics.fvd import RESIZES, FrechetVideoDistance, load_i3d
from frgan.metrics.i3d import MIN_FRAMES
from frgan.metrics.i3d_weights import WeightsUnavailable
from frgan.models.checkpoints import load_model
from frgan.utils.checkpoint_io import find_checkpoint
from frgan.utils.checks import check_choice, check_int
from frgan.utils.cli import report_user_errors, run_hydra_app
from frgan.utils.device import resolve_device

log = logging.getLogger(__name__)

BASELINE = "copy_first_frame"
LABELS = {
    BASELINE: "copy first frame",
    "forecast": "forecast only",
    "refined": "two-stage (forecast + refine)",
}

RESIZE_DESCRIPTIONS = {
    "tf1": "tf1: the original FVD's, TF1 tf.image.resize_bilinear (source pixel = index * in/out, "
    "no half-pixel offset)",
    "torch": "torch: half-pixel bilinear (F.interpolate, align_corners=False), not the original "
    "FVD's: not comparable with published FVD",
}
INTERVAL_DESCRIPTION = (
    "95% jackknife interval: FVD ± 1.96 delete-one jackknife standard errors (each clip of "
    "either set left out in turn), low end clamped at 0; an interval for the expected FVD at "
    "these numbers of clips, not for the distance between the populations, which few clips "
    "overestimate"
)


def evaluate(cfg: DictConfig, command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the evaluation protocol of cfg.evaluation; returns what metrics.json holds.
    `command` (the command line that ran it) is stated in report.md with commit, machine, date."""
    settings = cfg.evaluation
    frames = check_int("evaluation.frames", settings.frames, least=2)
    _check_fvd_settings(settings.fvd)
    if cfg.get("ckpt") is None:
        raise ConfigError(
            "give the model to evaluate: ckpt=<checkpoint file or run folder of frgan.train>"
        )
    pl.seed_everything(cfg.seed, workers=True)
    device = resolve_device(cfg.get("device", "auto"))
    checkpoint = find_checkpoint(cfg.ckpt)
    model = load_model(checkpoint).to(device)
    model_size = getattr(model.hparams, "image_size", None)
    if model_size is not None and model_size != cfg.data.image_size:
        raise ConfigError(
            f"{checkpoint} was trained on {model_size} px frames but data.image_size="
            f"{cfg.data.image_size}; set data.image_size={model_size} (or evaluate a model "
            "trained at this size)"
        )
    expression = expression_settings(settings.get("expression"), settings.progress)
    threshold = settings.get("moving_threshold")
    if threshold is None:
        threshold = getattr(model.hparams, "moving_threshold", DEFAULT_MOVING_THRESHOLD)

    stride = settings.get("clip_stride")
    stride = sys.maxsize if stride is None else check_int("evaluation.clip_stride", stride)
    # the maps the model was trained on, whatever data.structure says here (as generate does)
    structure = training_setting(checkpoint, "data.structure") or cfg.data.structure
    if structure != cfg.data.structure:
        log.info("rendering %s structure maps, as %s was trained on", structure, checkpoint)
    datamodule = hydra.utils.instantiate(
        cfg.data,
        structure=structure,
        stage="refine",
        clip_length=frames,
        clip_stride=stride,
        batch_size=check_int("evaluation.batch_size", settings.batch_size),
        retarget_prob=0.0,
    )
    model_mesh = model.identity().get("structure_mesh", "face68")
    if model_mesh != datamodule.structure_mesh:
        raise ConfigError(
            f"{checkpoint} was trained on {model_mesh} landmarks, but data.structure_mesh="
            f"{datamodule.structure_mesh}; set data.structure_mesh={model_mesh} to evaluate it "
            f"on {model_mesh} shards (or evaluate a model of {datamodule.structure_mesh})"
        )
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.test_dataloader()
    videos = datamodule.num_samples("test")
    limit = settings.get("max_videos")
    if limit is not None:
        videos = min(videos, check_int("evaluation.max_videos", limit))

    fvd, fvd_status = _fvd_metrics(settings.fvd, frames, device)
    scores: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
    samples: list[dict[str, torch.Tensor]] = []
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]evaluate[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("videos"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not settings.progress) as bar:
        task = bar.add_task("evaluate", total=videos)
        seen = 0
        for batch in loader:
            if seen >= videos:
                break
            keep = videos - seen
            x0, s0 = batch["x0"][:keep].to(device), batch["s0"][:keep].to(device)
            target = batch["frames"][:keep].to(device)
            structures = batch["structures"][:keep].to(device)
            landmarks = batch["landmarks"][:keep].to(device) if "landmarks" in batch else None
            l0 = batch["l0"][:keep].to(device) if "l0" in batch else None
            seen += len(x0)
            with torch.no_grad():
                clips = {BASELINE: x0.unsqueeze(1).expand_as(target)}
                clips.update(model.animate(x0, s0, structures, l0, landmarks))
                for name, clip in clips.items():
                    clip_scores = registry.score_clip(clip, target, x0, threshold, landmarks)
                    for metric, values in clip_scores.items():
                        scores[name][metric].append(values.cpu())
            if fvd is not None:
                real = fvd.extractor_features(target)
                for name, clip in clips.items():
                    fvd.metric(name).update(real_features=real, fake_clips=clip)
            if len(samples) < settings.sample_videos:
                samples.append({"target": target.cpu(), "structures": structures.cpu()})
                samples[-1].update({name: clip.cpu() for name, clip in clips.items()})
            bar.advance(task, len(x0))

    results = _summarize(scores, fvd, fvd_status)
    protocol = _protocol(cfg, datamodule, checkpoint, model, frames, stride, threshold, videos)
    payload = {"protocol": protocol, "fvd": fvd_status, "methods": results}
    if expression is not None:
        payload["expression"] = run_expression_protocol(
            model, datamodule.takes("test"), datamodule.render, expression, seed=cfg.seed
        )
    out_dir = Path(cfg.paths.output_dir)
    write_report(out_dir, payload, _sample_grid(samples, settings.sample_videos), command)
    return payload


class _SharedFVD:
    """One I3D for every method: real clips go through it once, each method has a metric."""

    def __init__(self, settings: DictConfig, device: torch.device):
        self.network = load_i3d(settings.get("weights")).to(device)
        self.settings = settings
        self.device = device
        self.metrics: dict[str, FrechetVideoDistance] = {}

    def metric(self, name: str) -> FrechetVideoDistance:
        if name not in self.metrics:
            self.metrics[name] = FrechetVideoDistance(
                self.network,
                batch_size=self.settings.batch_size,
                interval=self.settings.interval,
                resize=self.settings.resize,
            ).to(self.device)
        return self.metrics[name]

    def extractor_features(self, clips: torch.Tensor) -> torch.Tensor:
        return self.metric(BASELINE).features(clips)


def _check_fvd_settings(settings: DictConfig) -> None:
    check_choice("evaluation.fvd.resize", settings.resize, RESIZES)
    if not isinstance(settings.interval, bool):
        raise ConfigError(
            f"evaluation.fvd.interval must be true or false, got {settings.interval!r}"
        )


def _fvd_metrics(
    settings: DictConfig, frames: int, device: torch.device
) -> tuple[_SharedFVD | None, dict[str, Any]]:
    """The FVD machinery, or None with the reason it is skipped (never a made-up number)."""
    if not settings.enabled:
        return None, {"status": "skipped", "reason": "evaluation.fvd.enabled=false"}
    if frames < MIN_FRAMES:
        reason = f"clips of {frames} frames; I3D needs at least {MIN_FRAMES} (evaluation.frames)"
        return None, {"status": "skipped", "reason": reason}
    try:
        shared = _SharedFVD(settings, device)
    except WeightsUnavailable as error:
        log.warning("FVD skipped: %s", error)
        Console(stderr=True, soft_wrap=True).print(f"[bold yellow]FVD skipped[/]: {error}")
        return None, {"status": "skipped", "reason": str(error)}
    return shared, {
        "status": "computed",
        "features": "Inception-I3D Kinetics-400 logits (400-d), frames resized to 224x224",
        "resize": RESIZE_DESCRIPTIONS[settings.resize],
        "interval": INTERVAL_DESCRIPTION if settings.interval else None,
        "kvd_kernel": "(x.y / 400 + 1)^3, unbiased MMD^2",
    }


def _summarize(scores, fvd: _SharedFVD | None, fvd_status: dict) -> dict[str, dict[str, Any]]:
    """Per method: every metric averaged over its finite values, frame metrics per frame too."""
    results: dict[str, dict[str, Any]] = {}
    for name, values in scores.items():
        summary: dict[str, Any] = {"label": LABELS.get(name, name)}
        per_frame = {}
        for metric in registry.keys(registry.FRAME):
            table = torch.cat(values[metric]).double()  # [videos, T]; NaN: nothing moves
            summary[metric] = _mean(table)
            per_frame[metric] = [_mean(table[:, t]) for t in range(table.shape[1])]
        for metric in registry.keys(registry.CLIP):
            summary[metric] = _mean(torch.cat(values[metric]).double())
        summary["per_frame"] = per_frame
        if fvd is not None:
            summary.update(fvd.metrics[name].compute())
        results[name] = summary
    return results


def _mean(values: torch.Tensor) -> float | None:
    """Mean over the finite values (frames without motion are NaN); None when there are none."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _protocol(cfg, datamodule, checkpoint, model, frames, stride, threshold, videos) -> dict:
    manifest = datamodule.manifest
    lengths = [n for r in manifest["shards"] if r["split"] == "test" for n in r["take_frames"]]
    one_per_take = stride == sys.maxsize
    selection = (
        f"the first {frames} frames of every take of the test split (one clip per take, from "
        "frame 0: the source frame is the clip's first frame)"
        if one_per_take
        else f"every {stride} frames of every test take, clips of {frames} frames; the source "
        "frame is the take's first frame"
    )
    if videos < datamodule.num_samples("test"):
        selection += f"; only the first {videos} videos in shard order (evaluation.max_videos)"
    padded = sum(1 for n in lengths if n < frames)
    if padded:
        selection += (
            f"; {padded} takes shorter than {frames} frames are padded with their last frame"
        )
    return {
        "checkpoint": str(checkpoint),
        "model": model.identity(),
        "dataset": datamodule.name,
        "shard_dir": str(datamodule.shard_dir),
        "test_subjects": manifest.get("split", {}).get("test", []),
        "takes": len(lengths),
        "videos": videos,
        "frames_per_video": frames,
        "resolution": f"{datamodule.image_size}x{datamodule.image_size}",
        "clip_selection": selection,
        "moving_threshold": threshold,
        "metric_averaging": (
            "frame metrics (PSNR, SSIM, rim error, face regions): mean over every (video, "
            "frame) with moving pixels (frame 0 equals the source and is left out; a face "
            "region's only where it moves); clip metrics (temporal error, flicker): mean over "
            "videos"
        ),
        "seeds": {
            "evaluate": cfg.seed,
            "split": manifest.get("prepare_config", {}).get("split_seed"),
            "synthetic_set": OmegaConf.select(cfg, "data.synth.seed"),
        },
    }


def _sample_grid(samples: list[dict[str, torch.Tensor]], count: int) -> torch.Tensor | None:
    """[T,3,rows·H,columns·W]: per video, ground truth | structure | every method."""
    from frgan.utils.media import side_by_side

    if not samples or count < 1:
        return None
    rows = []
    for sample in samples:
        methods = [k for k in sample if k not in ("target", "structures")]
        for b in range(sample["target"].shape[0]):
            columns = [sample["target"][b], sample["structures"][b]]
            rows.append(side_by_side(columns + [sample[k][b] for k in methods]))
    return torch.cat(rows[:count], dim=-2)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate.yaml")
@report_user_errors(stop_hint="no report was written; run it again")
def main(cfg: DictConfig) -> None:
    payload = evaluate(cfg, ["python", "-m", "frgan.evaluate", *HydraConfig.get().overrides.task])
    out_dir = Path(cfg.paths.output_dir).resolve()
    for name, result in payload["methods"].items():
        log.info("%s: %s", name, {k: v for k, v in result.items() if k != "per_frame"})
    print(f"Evaluation ({payload['protocol']['videos']} videos): {out_dir}/report.md")
    if payload["fvd"]["status"] == "skipped":
        print(f"FVD skipped: {payload['fvd']['reason']}")
    if "expression" in payload:
        print("\n".join(expression_key_lines(payload["expression"])))


if __name__ == "__main__":
    run_hydra_app(main)
