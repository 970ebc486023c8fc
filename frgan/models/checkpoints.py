"""Load a trained FRGAN model for inference from a checkpoint file or a run folder."""

from __future__ import annotations

from pathlib import Path

from frgan.models.gan import GANModule, read_checkpoint


def model_classes() -> dict[str, type[GANModule]]:
    """Model classes by the name a checkpoint records (its "frgan_model" identity)."""
    from frgan.models.forecast_gan import ForecastGAN
    from frgan.models.refine_gan import RefineGAN

    return {"ForecastGAN": ForecastGAN, "RefineGAN": RefineGAN}


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or the best checkpoint of a run folder (its
    checkpoints/epoch_*.ckpt, newest first), else that folder's last.ckpt."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(folder.glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime)
        if best:
            return best[-1]
        if (folder / "last.ckpt").is_file():
            return folder / "last.ckpt"
        raise FileNotFoundError(
            f"{path} holds no checkpoint (looked for checkpoints/epoch_*.ckpt and last.ckpt); "
            "give a checkpoint file or the folder of a finished frgan.train run"
        )
    raise FileNotFoundError(
        f"checkpoint {path} does not exist; give a .ckpt file or a run folder "
        "(outputs/<task>/runs/<date>_<time>)"
    )


def load_model(
    path: str | Path, expected: tuple[str, ...] | None = None, map_location: str = "cpu"
) -> GANModule:
    """The model of a checkpoint (file or run folder) in eval mode, whatever its stage.

    expected: the class names the caller accepts; another kind is one clear error.
    """
    file = find_checkpoint(path)
    identity = read_checkpoint(file).get("frgan_model")
    classes = model_classes()
    name = identity.get("class") if isinstance(identity, dict) else None
    if name not in classes:
        raise ValueError(
            f"{file} is not a FRGAN model checkpoint (no model identity of {sorted(classes)}); "
            "give a checkpoint written by frgan.train"
        )
    if expected is not None and name not in expected:
        raise ValueError(f"{file} holds a {name}, but this command needs one of {list(expected)}")
    model = classes[name].load_from_checkpoint(file, map_location=map_location)
    return model.eval()
