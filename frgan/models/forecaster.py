"""The frozen stage-1 forecaster inside a RefineGAN: find it, check it, rebuild it.

model.forecast_ckpt is a checkpoint file, a run folder, or `best` / `last` of the newest
forecast run: the newest `checkpoints/last.ckpt` under model.forecast_runs (paths.log_dir by
default; every task, multirun and two-stage folder included) whose checkpoint holds a
ForecastGAN; `best` is that run's epoch_*.ckpt (checkpoints.find_checkpoint), `last` its
last.ckpt. The sampling generator of the checkpoint (its EMA copy when it has one) is what
refines: a Generator rebuilt from the checkpoint's identity (preset, image size), so the
refine checkpoint can carry it without the forecast file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from frgan.errors import ConfigError
from frgan.models.generator import Generator
from frgan.models.presets import architecture
from frgan.utils.checkpoint_io import (
    LAST,
    find_checkpoint,
    model_identity,
    newest_last_checkpoint,
    read_checkpoint,
)

KEY = "model.forecast_ckpt"


def resolve_forecast_ckpt(value: str | Path, runs_root: str | Path) -> Path:
    """The checkpoint file model.forecast_ckpt names."""
    if str(value) in ("best", "last"):
        run = newest_forecast_run(Path(runs_root))
        last = run / "checkpoints" / LAST
        return last if str(value) == "last" else find_checkpoint(run)
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(
            f"{KEY}={value}: no such checkpoint file or run folder; give a ForecastGAN "
            "checkpoint, a forecast run folder, or best / last (newest forecast run)"
        )
    return find_checkpoint(path)


def newest_forecast_run(runs_root: Path) -> Path:
    """The run folder of the newest last.ckpt under runs_root that holds a ForecastGAN."""
    last = newest_last_checkpoint(runs_root, "ForecastGAN")
    if last is not None:
        return last.parent.parent
    raise FileNotFoundError(
        f"{KEY}: no forecast run under {runs_root} (looked for checkpoints/last.ckpt of a "
        "ForecastGAN); train stage 1 first (python -m frgan.train) or give the checkpoint path"
    )


def load_forecaster(path: Path, image_size: int) -> tuple[Generator, dict[str, Any]]:
    """The sampling generator of the ForecastGAN checkpoint at `path`, and its identity."""
    try:
        checkpoint = read_checkpoint(path)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"{KEY}: {error}") from error
    identity = model_identity(checkpoint)
    if identity.get("class") != "ForecastGAN":
        found = identity.get("class") or "no FRGAN model"
        raise ConfigError(
            f"{KEY}={path} holds {found}, not a ForecastGAN; give a stage-1 (forecast) checkpoint"
        )
    if identity.get("image_size") != image_size:
        raise ConfigError(
            f"{KEY}={path} was trained at {identity.get('image_size')} px but the data is "
            f"{image_size} px; give a forecast checkpoint of data.image_size={image_size}"
        )
    forecaster = build_forecaster(identity)
    prefix = "generator_ema." if identity.get("ema") else "generator."
    weights = {
        key[len(prefix) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
    forecaster.load_state_dict(weights)
    return forecaster, dict(identity)


def build_forecaster(identity: Mapping[str, Any]) -> nn.Module:
    """A frozen, untrained Generator of the architecture a ForecastGAN identity describes."""
    preset = identity["preset"]
    generator = Generator(
        architecture(preset, identity["image_size"]),
        identity.get("residual", "paint"),
        identity.get("warp", False),
        identity.get("head_blocks", 0),
        identity.get("part_refiners", ()),
        identity.get("landmark_warp", False),
        identity.get("mouth_interior", False),
    )
    return generator.requires_grad_(False).eval()
