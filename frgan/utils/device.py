"""The torch device an inference command runs on, from its `device` config key."""

from __future__ import annotations

import torch

from frgan.errors import ConfigError


def resolve_device(name: str, key: str = "device") -> torch.device:
    """ "auto" = the first CUDA GPU when there is one, else the CPU; otherwise a torch device
    name (cpu, cuda, cuda:1) that must exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(
            f"{key}={name!r} is not a torch device; use auto, cpu, cuda or cuda:<index>"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name} but no CUDA GPU is available here; use {key}=auto or cpu")
    return device
