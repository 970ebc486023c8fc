"""Which process of a distributed run this is, known from the environment before Lightning runs.

Launchers that start every process themselves (torchrun, srun, Lightning's own DDP launcher) set
the rank in the environment, and each process composes the run's config on its own: Hydra's
run-folder files (`.hydra/`, `<task>.log`) are written by global rank 0 only, through the
`rank_zero_only` resolver (conf/hydra/default.yaml) and RankZeroFileHandler (which lets the
errors of every rank through).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import OmegaConf

# torchrun (RANK), Lightning's launcher (LOCAL_RANK, and NODE_RANK on multi-node runs started
# on each node), SLURM's srun (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def is_global_zero() -> bool:
    """False in the processes a launcher started for ranks > 0."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit() and int(value) > 0:
            return False
    return True


def rank_zero_only(value: Any) -> Any:
    """`value` on global rank 0, None on the other ranks (the `rank_zero_only` resolver)."""
    return value if is_global_zero() else None


class RankZeroFileHandler(logging.FileHandler):
    """The run's log file, written by global rank 0; other ranks add only their errors (and
    do not open the file until they have one: conf/hydra/default.yaml sets delay=True)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or is_global_zero():
            super().emit(record)


# Hydra resolves conf/hydra/default.yaml when an entry point starts; every entry point imports
# this module (through frgan.utils.cli) before that.
OmegaConf.register_new_resolver("rank_zero_only", rank_zero_only, replace=True)
