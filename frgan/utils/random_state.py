"""The random generators' states (torch, CUDA, numpy, Python), kept in checkpoints so that a
resumed run draws the same numbers the stopped one would have (e.g. the gradient penalty's
interpolation weights). Stored as tensors, numbers and lists only: a checkpoint loaded with
`torch.load(weights_only=True)` holds them."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def random_states() -> dict[str, Any]:
    """The states of torch's, CUDA's, numpy's and Python's global generators."""
    # the legacy global generator: what libraries that use numpy draw from
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()  # noqa: NPY002
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }


def set_random_states(states: dict[str, Any]) -> None:
    """Restore what `random_states` returned (CUDA's only where it was saved and is here)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    saved = states["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["cached_gauss"],
        )
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
