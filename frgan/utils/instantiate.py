"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger


def _instantiate_group(group: DictConfig | None, kind: str) -> list:
    """Instantiate every `_target_` entry of a config group (a dict of named objects)."""
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(
            f"the {kind} config must be a mapping of name -> object config, got {type(group).__name__}"
        )
    objects = []
    for name, object_cfg in group.items():
        if isinstance(object_cfg, DictConfig) and "_target_" in object_cfg:
            objects.append(hydra.utils.instantiate(object_cfg))
        elif object_cfg is not None:
            raise ValueError(
                f"{kind}.{name} has no _target_; every entry of `{kind}` must name a class to build"
            )
    return objects


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    return _instantiate_group(callbacks_cfg, "callbacks")


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    return _instantiate_group(logger_cfg, "logger")
