"""Checkpoints that are never half-written."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from frgan.utils.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file beside the target, then rename over it.

    A run killed while saving leaves the previous checkpoint intact instead of a
    truncated file that cannot be resumed from.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
