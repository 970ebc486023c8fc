"""Checkpoint files: read, found, written, verified — every one of them, here.

Reading: a checkpoint is a file a user hands over, so it is untrusted. Every read, Lightning's
own (a resumed fit, `load_from_checkpoint`) included, goes through `read_checkpoint`:
`torch.load(weights_only=True)`, which builds tensors, containers and plain values but no other
Python object, with only the few types Lightning checkpoints legitimately hold allowed
(`CHECKPOINT_GLOBALS`). A pickle that would run code is refused with one line, unrun.

Finding: a checkpoint file or a run folder (`find_checkpoint`), the newest `last.ckpt` under a
runs root (`newest_last_checkpoint`), `ckpt_path=last|auto` (`resolve_ckpt_path`).

Writing: never half-written (`AtomicCheckpointIO`), with a digest of the weights checked on
loading, and one clear line when a write fails. Loading a model lives one layer up, beside the
model classes (frgan/models/checkpoints.py).
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import pathlib
import pickle
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import omegaconf
import torch
from omegaconf.base import ContainerMetadata, Metadata
from pytorch_lightning.plugins.io import TorchCheckpointIO

from frgan.errors import FRGANError
from frgan.utils.files import atomic_path

log = logging.getLogger(__name__)

DIGEST_KEY = "frgan_state_dict_sha256"
VERIFY_OVERRIDE = "ckpt_verify=false"
LAST = "last.ckpt"
BEST_PATTERN = "epoch_*.ckpt"
# Beyond tensors, containers and plain values, what a Lightning checkpoint may hold: hyper-
# parameters kept as an OmegaConf container (a model built from a DictConfig without
# `_convert_: all`) or holding paths, and numpy arrays of RNG states. Each of these only
# stores data when unpickled.
CHECKPOINT_GLOBALS = [
    omegaconf.DictConfig,
    omegaconf.ListConfig,
    omegaconf.nodes.AnyNode,
    ContainerMetadata,
    Metadata,
    typing.Any,
    collections.defaultdict,
    dict,
    list,
    int,
    pathlib.PosixPath,
    pathlib.PurePosixPath,
    np.ndarray,
    np.dtype,
    np.dtypes.UInt32DType,  # the state of numpy's global RNG
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
]
# how torch's weights-only unpickler names what it refused
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>")


class CheckpointError(FRGANError, ValueError):
    """A file that is not a checkpoint this program may load (unreadable, or refused)."""


class CheckpointWriteError(FRGANError):
    """A checkpoint could not be written (full disk, read-only or missing folder)."""


class DamagedCheckpointError(FRGANError, ValueError):
    """A checkpoint whose weights differ from the digest recorded when it was saved."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file's content, on the CPU, read without running any code it may carry;
    one clear error for a missing, unreadable or refused file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file; give a .ckpt file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _REFUSED.search(str(error))
        what = f"it names {refused.group(1) or refused.group(2)}" if refused else "see torch.load"
        raise CheckpointError(
            f"{path} was refused: it holds Python objects a checkpoint never contains ({what}), "
            "which could run code when loaded; nothing of it was run. Load only checkpoints "
            "written by frgan.train from a source you trust"
        ) from error
    except Exception as error:  # noqa: BLE001 — any unreadable file gets the same message
        raise CheckpointError(
            f"{path} is not a readable PyTorch Lightning checkpoint ({_first_line(error)}); "
            "it may be truncated or not a checkpoint: give a .ckpt file written by frgan.train"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} is not a PyTorch Lightning checkpoint (it holds a "
            f"{type(checkpoint).__name__}, not a dict); give a .ckpt file written by frgan.train"
        )
    return checkpoint


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def model_identity(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The FRGAN model identity a checkpoint records (class, preset, size, ...), {} if none."""
    identity = checkpoint.get("frgan_model")
    return dict(identity) if isinstance(identity, Mapping) else {}


def logged_step(checkpoint: Mapping[str, Any]) -> int | None:
    """The logger step of the last batch a checkpoint had trained (Lightning's
    `_batches_that_stepped`, the `step` column of metrics.csv), None when it is not recorded."""
    loops = checkpoint.get("loops")
    fit_loop = loops.get("fit_loop") if isinstance(loops, Mapping) else None
    state = fit_loop.get("epoch_loop.state_dict") if isinstance(fit_loop, Mapping) else None
    step = state.get("_batches_that_stepped") if isinstance(state, Mapping) else None
    return step if isinstance(step, int) else None


def weights_mismatch(expected: Mapping[str, Any], found: Any) -> str | None:
    """Why the weights `found` (a checkpoint's state_dict) cannot be loaded strictly into a
    model whose state_dict is `expected` (names and shapes), or None when they can."""
    if not isinstance(found, Mapping):
        return f"its state_dict is a {type(found).__name__}, not a mapping of tensors"
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    if missing or extra:
        return (
            f"{len(missing)} weights missing, e.g. {missing[:1]}; "
            f"{len(extra)} unknown, e.g. {extra[:1]}"
        )
    for name, value in expected.items():
        other = found[name]
        if not isinstance(other, torch.Tensor) or other.shape != value.shape:
            shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
            return f"{name} is {shape}, the model's is {tuple(value.shape)}"
    return None


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or the best checkpoint of a run folder (its
    checkpoints/epoch_*.ckpt, newest first), else that folder's last.ckpt."""
    path = Path(path)
    if path.is_file():
        return path
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is not a file; give a .ckpt file or a run folder")
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(folder.glob(BEST_PATTERN), key=lambda p: p.stat().st_mtime)
        if best:
            return best[-1]
        if (folder / LAST).is_file():
            return folder / LAST
        raise FileNotFoundError(
            f"{path} holds no checkpoint (looked for checkpoints/epoch_*.ckpt and last.ckpt); "
            "give a checkpoint file or the folder of a finished frgan.train run"
        )
    raise FileNotFoundError(
        f"checkpoint {path} does not exist; give a .ckpt file or a run folder "
        "(outputs/<task>/runs/<date>_<time>)"
    )


def newest_last_checkpoint(runs_root: Path, model_class: str | None = None) -> Path | None:
    """The newest checkpoints/last.ckpt under runs_root (of a `model_class` model when given),
    None when there is none."""
    candidates = sorted(
        runs_root.glob(f"**/checkpoints/{LAST}"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for last in candidates:
        if model_class is None or model_identity(read_checkpoint(last)).get("class") == model_class:
            return last
    return None


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path, runs_root: Path) -> str | None:
    """Turn `ckpt_path=last` into a file; check that an explicit path exists.

    "last" means this run folder's checkpoints/last.ckpt when it exists (a run restarted
    in its own folder with hydra.run.dir=...), else the newest last.ckpt of earlier runs.
    "auto" means this run folder's last.ckpt when it exists, else a fresh start: what a job
    requeued after preemption (same command, same folder) needs.
    """
    if ckpt_path is None:
        return None
    own = run_dir / "checkpoints" / LAST
    if ckpt_path == "auto":
        return str(own) if own.is_file() else None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        return str(ckpt_path)
    if own.is_file():
        return str(own)
    newest = newest_last_checkpoint(runs_root)
    if newest is None:
        raise FileNotFoundError(
            f"ckpt_path=last: no last.ckpt in {own.parent} nor under {runs_root}; "
            "give the checkpoint's path instead (ckpt_path=/path/to/last.ckpt)"
        )
    log.info("ckpt_path=last resolved to %s", newest)
    return str(newest)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file beside the target, then rename over it; load like
    `read_checkpoint` (never Lightning's unchecked torch.load).

    A run killed while saving, or a save that fails (a full disk), leaves the previous
    checkpoint intact instead of a truncated file that cannot be resumed from.
    """

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # a resumed fit (Trainer.fit(ckpt_path=...)) and test read through here, in every process
        return read_checkpoint(path)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        try:
            with atomic_path(path) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)
        except OSError as error:
            raise CheckpointWriteError(describe_write_failure(path, error)) from error
        except RuntimeError as error:
            # torch.save reports a failed write of its zip archive as a RuntimeError
            if "write" not in str(error).lower():
                raise
            raise CheckpointWriteError(describe_write_failure(path, error)) from error


def describe_write_failure(path: str | Path, error: BaseException) -> str:
    folder = Path(path).parent
    code = getattr(error, "errno", None)
    if code is None and isinstance(error.__cause__, OSError):
        code = error.__cause__.errno
    if code == errno.ENOSPC or code is None and "space" in str(error).lower():
        what, todo = "the disk is full", f"free space on the disk of {folder}"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what, todo = "the folder is not writable", f"make {folder} writable"
    else:
        what, todo = str(error).splitlines()[0], f"check {folder}"
    return (
        f"cannot write checkpoint {path}: {what}; any previous checkpoint there is kept; "
        f"{todo} (or set paths.log_dir to another disk), then resume with ckpt_path=last"
    )


def state_dict_digest(state_dict: Mapping[str, Any]) -> str:
    """sha256 over every tensor of a state_dict: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if not isinstance(value, torch.Tensor):
            continue
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(memoryview(tensor.view(torch.uint8).numpy()))
    return digest.hexdigest()


def add_digest(checkpoint: dict[str, Any]) -> None:
    checkpoint[DIGEST_KEY] = state_dict_digest(checkpoint.get("state_dict", {}))


def check_digest(checkpoint: Mapping[str, Any], source: str) -> bool:
    """Raise DamagedCheckpointError when the weights differ from the recorded digest.

    Returns False for a checkpoint saved without a digest (nothing to check)."""
    recorded = checkpoint.get(DIGEST_KEY)
    if recorded is None:
        return False
    if state_dict_digest(checkpoint.get("state_dict", {})) != recorded:
        raise DamagedCheckpointError(
            f"{source} is damaged: its weights do not match the sha256 recorded when it was "
            "saved; use another checkpoint (the run folder's checkpoints/epoch_*.ckpt or an "
            f"earlier copy), or set {VERIFY_OVERRIDE} to load it anyway"
        )
    return True
