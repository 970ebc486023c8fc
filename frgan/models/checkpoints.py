"""Load a trained FRGAN model for inference from a checkpoint file or a run folder.

Above the model classes: it imports them from their modules, and nothing below imports it.
Reading and finding checkpoint files is frgan/utils/checkpoint_io.py's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from frgan.errors import FRGANError
from frgan.models.forecast_gan import ForecastGAN
from frgan.models.gan import GANModule
from frgan.models.refine_gan import RefineGAN
from frgan.utils.checkpoint_io import (
    CHECKPOINT_GLOBALS,
    CheckpointError,
    find_checkpoint,
    model_identity,
    read_checkpoint,
)

# model classes by the name a checkpoint records (its "frgan_model" identity)
MODEL_CLASSES: dict[str, type[GANModule]] = {"ForecastGAN": ForecastGAN, "RefineGAN": RefineGAN}


def load_model(
    path: str | Path, expected: tuple[str, ...] | None = None, map_location: str = "cpu"
) -> GANModule:
    """The model of a checkpoint (file or run folder) in eval mode, whatever its stage.

    expected: the class names the caller accepts; another kind is one clear error.
    """
    file = find_checkpoint(path)
    name = model_identity(read_checkpoint(file)).get("class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(
            f"{file} is not a FRGAN model checkpoint (no model identity of "
            f"{sorted(MODEL_CLASSES)}); give a checkpoint written by frgan.train"
        )
    if expected is not None and name not in expected:
        raise CheckpointError(
            f"{file} holds a {name}, but this command needs one of {list(expected)}"
        )
    try:
        # read safely above; Lightning reads it again, with the same allow-list
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            model = MODEL_CLASSES[name].load_from_checkpoint(
                file, map_location=map_location, weights_only=True
            )
    except RuntimeError as error:  # load_state_dict: the weights do not fit the hyper-parameters
        lines = str(error).strip().splitlines()
        detail = (lines[1] if len(lines) > 1 else lines[0]).strip()
        raise FRGANError(
            f"{file}: its weights do not fit the model its hyper-parameters describe "
            f"({detail}); the file was damaged or edited: use a checkpoint as frgan.train "
            "wrote it"
        ) from error
    return model.eval()
