"""Config helpers: print the composed tree, find checkpoints to resume from."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PRINT_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")


def print_config_tree(
    cfg: DictConfig, save_to: Path | None = None, order: Sequence[str] = PRINT_ORDER
) -> None:
    """Print the resolved config as a rich tree (main groups first) and save it as text."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order]
    for field in fields:
        branch = tree.add(field, style="bold", guide_style="dim")
        value = cfg[field]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as f:
            rich.print(tree, file=f)


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path, runs_root: Path) -> str | None:
    """Turn `ckpt_path=last` into a file; check that an explicit path exists.

    "last" means this run folder's checkpoints/last.ckpt when it exists (a run restarted
    in its own folder with hydra.run.dir=...), else the newest last.ckpt of earlier runs.
    "auto" means this run folder's last.ckpt when it exists, else a fresh start: what a job
    requeued after preemption (same command, same folder) needs.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "auto":
        own = run_dir / "checkpoints" / "last.ckpt"
        return str(own) if own.is_file() else None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        return str(ckpt_path)
    own = run_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return str(own)
    candidates = sorted(runs_root.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(
            f"ckpt_path=last: no last.ckpt in {own.parent} nor under {runs_root}; "
            "give the checkpoint's path instead (ckpt_path=/path/to/last.ckpt)"
        )
    log.info("ckpt_path=last resolved to %s", candidates[-1])
    return str(candidates[-1])
