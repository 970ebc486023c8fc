"""Checkpoints that are never half-written, carry a digest of their weights, and stop the run
with one clear line when they cannot be written."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from frgan.errors import FRGANError
from frgan.utils.files import atomic_path

DIGEST_KEY = "frgan_state_dict_sha256"
VERIFY_OVERRIDE = "ckpt_verify=false"


class CheckpointWriteError(FRGANError):
    """A checkpoint could not be written (full disk, read-only or missing folder)."""


class DamagedCheckpointError(FRGANError, ValueError):
    """A checkpoint whose weights differ from the digest recorded when it was saved."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file beside the target, then rename over it.

    A run killed while saving, or a save that fails (a full disk), leaves the previous
    checkpoint intact instead of a truncated file that cannot be resumed from.
    """

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
