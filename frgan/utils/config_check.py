"""Check a composed train config before anything is built: one clear error naming the key.

Keys of the `model`, `data` and `trainer` groups are checked against the signature of the class
their `_target_` names (unknown keys; values of the wrong type), the top-level keys against
TOP_LEVEL_TYPES, and a few values that the libraries refuse deep inside, in their own words,
against declared ranges.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
from typing import Any, Literal, Union, get_args, get_origin

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from frgan.errors import ConfigError

GROUPS_BUILT_FROM_TARGET = ("data", "model", "trainer")
# keys Hydra's instantiate reads itself (not passed to the class)
HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}
# keys that train.py passes to the Trainer itself
TRAINER_KEYS_SET_BY_TRAIN = {"callbacks", "logger"}

TOP_LEVEL_TYPES: dict[str, Any] = {
    "task_name": str,
    "tags": list[str] | None,
    "train": bool,
    "test": bool,
    "ckpt_path": str | None,
    "init_ckpt": str | None,
    "ckpt_verify": bool,
    "seed": int | None,
    "optimized_metric": str | None,
}

GPU_ACCELERATORS = ("gpu", "cuda")
# fp16 autocast with loss scaling: CUDA only (Lightning turns it into bf16 on a CPU)
FP16_MIXED = ("16-mixed", "16")


def check_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line, naming the key) for the first mistake found in `cfg`."""
    values = _resolved(cfg)
    for key, annotation in TOP_LEVEL_TYPES.items():
        if key in values:
            _check_type(key, values[key], annotation)
    for group in GROUPS_BUILT_FROM_TARGET:
        if isinstance(values.get(group), dict) and "_target_" in values[group]:
            _check_against_target(group, values[group])
    _check_trainer_values(values.get("trainer") or {})


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers; a broken interpolation is reported with its key."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "a config value"
        message = str(error).splitlines()[0]
        raise ConfigError(f"{key}: {message}") from None


def _check_against_target(group: str, values: dict[str, Any]) -> None:
    target = values["_target_"]
    try:
        cls = hydra.utils.get_class(target)
    except Exception as error:  # noqa: BLE001 — any import failure is the same config mistake
        raise ConfigError(f"{group}._target_={target} cannot be imported ({error})") from None
    parameters = _parameters(cls)
    known = set(parameters) | HYDRA_KEYS
    if group == "trainer":
        known |= TRAINER_KEYS_SET_BY_TRAIN
    for key, value in values.items():
        if key not in known:
            valid = ", ".join(sorted(parameters))
            raise ConfigError(
                f"{group}.{key} is not a setting of {cls.__name__}; valid keys: {valid}"
            )
        if key in parameters:
            _check_type(f"{group}.{key}", value, parameters[key])


def _parameters(cls: type) -> dict[str, Any]:
    """Named constructor parameters and their annotations, following **kwargs up the MRO."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        try:
            signature = inspect.signature(klass.__init__, eval_str=True)
        except Exception:  # noqa: BLE001 — unresolvable annotations: names only
            signature = inspect.signature(klass.__init__)
        params = list(signature.parameters.values())[1:]
        for param in params:
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                found.setdefault(param.name, param.annotation)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return found


def _check_type(key: str, value: Any, annotation: Any) -> None:
    if not _conforms(value, annotation):
        raise ConfigError(f"{key}={value!r} is invalid: expected {_describe(annotation)}")


def _conforms(value: Any, annotation: Any) -> bool:
    if annotation in (inspect.Parameter.empty, Any) or isinstance(annotation, str):
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple or annotation is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_conforms, value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable) or annotation is list:
        if not isinstance(value, (list, tuple)):
            return False
        return not args or all(_conforms(v, args[0]) for v in value)
    if origin in (dict, collections.abc.Mapping) or annotation in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if isinstance(annotation, type):
        # an object the config builds from a mapping with _target_
        return isinstance(value, annotation) or (isinstance(value, dict) and "_target_" in value)
    return True  # a typing construct not described here: leave it to the class


def _describe(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        names = [_describe(a) for a in args if a is not type(None)]
        if type(None) in args:
            names.append("null")
        return " or ".join(dict.fromkeys(names))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        return f"a list (each item {_describe(args[0])})" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or annotation in (dict, collections.abc.Mapping):
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    return f"a {getattr(annotation, '__name__', annotation)} config (with _target_)"


def _check_trainer_values(trainer: dict[str, Any]) -> None:
    """Values Lightning refuses only once it runs, or in its own words."""
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = trainer.get(key)
        if isinstance(value, float) and not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"trainer.{key}={value!r} is invalid: a fraction of the batches in [0.0, 1.0] "
                "or a number of batches >= 0"
            )
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(
                f"trainer.{key}={value!r} is invalid: a number of batches >= 0 or a fraction "
                "in [0.0, 1.0] (1.0 = all)"
            )
    for key, lowest in (("max_epochs", -1), ("min_epochs", 0), ("max_steps", -1)):
        value = trainer.get(key)
        if isinstance(value, int) and value < lowest:
            raise ConfigError(f"trainer.{key}={value!r} is invalid: must be >= {lowest}")
    for key in ("check_val_every_n_epoch", "log_every_n_steps"):
        value = trainer.get(key)
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"trainer.{key}={value!r} is invalid: must be >= 1")
    devices = trainer.get("devices")
    if isinstance(devices, int) and (devices == 0 or devices < -1):
        raise ConfigError(
            f"trainer.devices={devices!r} is invalid: a number >= 1, -1 (all), auto or a list"
        )
    accelerator = trainer.get("accelerator")
    precision = str(trainer.get("precision"))
    on_cpu = accelerator == "cpu" or accelerator == "auto" and not torch.cuda.is_available()
    if precision in FP16_MIXED and on_cpu:
        # Lightning would run bf16 autocast instead, without a word
        raise ConfigError(
            f"trainer.precision={precision} needs a CUDA GPU (fp16 with loss scaling); on a "
            "CPU it would silently run bf16-mixed: set trainer.precision=bf16-mixed or 32-true"
        )
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU; "
            "use trainer=cpu (or trainer=ddp_sim for DDP with CPU processes)"
        )
    distributed = "ddp" in str(trainer.get("strategy", ""))
    if accelerator == "cpu" and trainer.get("sync_batchnorm") and distributed:
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch synchronises BatchNorm across "
            "processes on CUDA only); with trainer.accelerator=cpu set trainer.sync_batchnorm=false"
        )
    if accelerator in GPU_ACCELERATORS and isinstance(devices, int) and devices > 0:
        count = torch.cuda.device_count()
        if devices > count:
            raise ConfigError(
                f"trainer.devices={devices} but this machine has {count} CUDA GPU(s); "
                f"set trainer.devices={count} (or -1 for all)"
            )
