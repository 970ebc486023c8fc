"""A trained model for generate, with what inference must know about its training data.

The structure maps must be rendered exactly as the DataModule rendered them in training, so
the kind (data.structure) is read from the training run's composed config,
<run>/.hydra/config.yaml, which Hydra writes beside every run's checkpoints/ folder. A
checkpoint file taken out of its run folder has no such record: then `structure=` says it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from frgan.data.structure import STRUCTURE_KINDS
from frgan.errors import ConfigError
from frgan.models.checkpoints import load_model
from frgan.models.gan import GANModule
from frgan.utils.checkpoint_io import find_checkpoint

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    model: GANModule
    checkpoint: Path
    image_size: int
    structure: str  # the structure-map kind to render (data.structure of the training run)
    structure_mesh: (
        str  # the landmarks' mesh it was trained on (from its identity): face68 | mesh468
    )
    data_name: str | None  # the training data set's name (data.name), None when unknown


def run_folder(checkpoint: Path) -> Path:
    """The folder of the run that wrote `checkpoint` (<run>/checkpoints/*.ckpt, or beside it)."""
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


def training_config_path(checkpoint: Path) -> Path:
    """Where the run that wrote `checkpoint` keeps its composed config."""
    return run_folder(checkpoint) / ".hydra" / "config.yaml"


def training_setting(checkpoint: Path, key: str) -> str | None:
    """A setting (e.g. data.structure) the training run of `checkpoint` recorded in its composed
    config; None for a checkpoint outside its run folder or a key it did not record."""
    config_path = training_config_path(checkpoint)
    if not config_path.is_file():
        return None
    return OmegaConf.select(OmegaConf.load(config_path), key)


def load_trained_model(path: str | Path, structure: str | None = None) -> TrainedModel:
    """The model of a checkpoint file or run folder in eval mode, and its data settings.

    structure: the kind of structure map to render; None = the training run's data.structure.
    """
    checkpoint = find_checkpoint(path)
    model = load_model(checkpoint)
    trained_with = training_setting(checkpoint, "data.structure")
    data_name = training_setting(checkpoint, "data.name")
    if structure is None and trained_with is None:
        raise ConfigError(
            f"cannot tell which structure maps {checkpoint} was trained on: no data.structure in "
            f"{training_config_path(checkpoint)}; set structure= to its training's data.structure "
            f"({' | '.join(STRUCTURE_KINDS)})"
        )
    if structure is not None and structure not in STRUCTURE_KINDS:
        raise ConfigError(
            f"structure={structure!r} is unknown; choose one of {', '.join(STRUCTURE_KINDS)} "
            "(or leave it null to use the checkpoint's training setting)"
        )
    if structure is not None and trained_with is not None and structure != trained_with:
        log.warning(
            "structure=%s, but %s was trained on %s structure maps: expect poor frames",
            structure,
            checkpoint,
            trained_with,
        )
    return TrainedModel(
        model=model,
        checkpoint=checkpoint,
        image_size=int(model.hparams.image_size),
        structure=structure or trained_with,
        structure_mesh=model.identity().get("structure_mesh", "face68"),
        data_name=data_name,
    )
