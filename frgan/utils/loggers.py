"""Experiment loggers that keep every record of a run across resumes and spawned processes.

CSV: Lightning's writer deletes an existing metrics.csv when it starts and believes that the
file's header is the list of keys it has seen itself. Both are false for a run resumed in its own
folder (the earlier rows are dropped) and under `ddp_spawn`, where fitting and testing run in
different processes, each with a fresh writer (the test stage rewrites the file with a header
that lacks the validation columns and csv raises "dict contains fields not in fieldnames").
`ResumableCSVLogger` reads the header from the file itself and never deletes earlier rows; a
run resumed from a checkpoint drops the rows a killed run had logged after it (the resumed run
logs those steps again).

wandb: the run id is recorded in the run folder, and a resumed run continues that wandb run.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, open_dict
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from frgan.utils.files import atomic_path

log = logging.getLogger(__name__)

WANDB_ID_FILE = Path("wandb") / "run_id"


class AppendingExperimentWriter(ExperimentWriter):
    """metrics.csv whose columns are the union of the file's header and every key logged."""

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an existing metrics.csv here; earlier records are kept instead."""

    def save(self) -> None:
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        header, complete = _read_header(path)
        logged = set().union(*self.metrics)
        self.metrics_keys = sorted(set(header) | set(self.metrics_keys) | logged)
        if header == self.metrics_keys and complete:
            with open(path, "a", newline="") as file:
                csv.DictWriter(file, fieldnames=self.metrics_keys).writerows(self.metrics)
        else:
            rows = _read_rows(path) if path.exists() else []
            with atomic_path(path, fsync=False) as tmp, open(tmp, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows([*rows, *self.metrics])
        self.metrics = []


class ResumableCSVLogger(CSVLogger):
    """CSVLogger that appends to an existing metrics.csv (resumed runs, ddp_spawn stages)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment

    def forget_rows_after(self, step: int) -> int:
        """Drop the training and validation rows of metrics.csv logged after `step`
        (atomically); returns how many."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if not path.is_file():
            return 0
        header, _ = _read_header(path)
        rows = _read_rows(path)
        kept = [row for row in rows if not _logged_after(row, step)]
        if len(kept) < len(rows):
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=header)
                writer.writeheader()
                writer.writerows(kept)
            log.info(
                "%s: dropped %d rows logged after step %d by the interrupted run; this run "
                "logs those steps again",
                path,
                len(rows) - len(kept),
                step,
            )
        return len(rows) - len(kept)


def _read_header(path: Path) -> tuple[list[str], bool]:
    """The file's columns, and whether its last row is complete (a killed write may cut it)."""
    if not path.is_file() or path.stat().st_size == 0:
        return [], True
    with open(path, newline="") as file:
        header = next(csv.reader(file), [])
    with open(path, "rb") as file:
        file.seek(-1, io.SEEK_END)
        complete = file.read(1) == b"\n"
    return header, complete


def _logged_after(row: dict[str, Any], step: int) -> bool:
    """Whether a resumed run logs `row` again: a training or validation row past `step` (a
    test row records the test of a run that ended; the resumed run adds its own)."""
    try:
        if int(row.get("step", "")) <= step:
            return False
    except ValueError:
        return False
    return any(
        v not in ("", None) and not k.startswith(("test/", "epoch", "step")) for k, v in row.items()
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as file:
        # a row cut by a killed write has missing fields (None): keep what it has
        return [
            {k: v for k, v in row.items() if k is not None and v is not None}
            for row in csv.DictReader(file)
        ]


def resume_wandb_run(logger_cfg: DictConfig | None, run_folders: list[Path]) -> None:
    """Point `logger.wandb` at the wandb run recorded in the first of `run_folders` that has
    one, so a resumed run continues it instead of starting a new one. An explicit
    `logger.wandb.id` wins."""
    wandb_cfg = logger_cfg.get("wandb") if logger_cfg else None
    if not wandb_cfg or wandb_cfg.get("id"):
        return
    for folder in run_folders:
        id_file = folder / WANDB_ID_FILE
        if id_file.is_file():
            run_id = id_file.read_text().strip()
            if run_id:
                with open_dict(wandb_cfg):
                    wandb_cfg.id = run_id
                    wandb_cfg.resume = "allow"
                log.info("continuing wandb run %s (recorded in %s)", run_id, id_file)
                return


def finish_loggers() -> None:
    """Close the wandb run, so the next job of a multirun or stage of a pipeline starts a new
    one (only where a wandb logger imported wandb: a run logging elsewhere needs none installed)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def record_wandb_run(loggers: list[Logger], run_dir: Path) -> None:
    """Write the wandb run id into the run folder (rank 0, once the run exists)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run_id = getattr(logger.experiment, "id", None)
            if isinstance(run_id, str) and run_id:
                path = run_dir / WANDB_ID_FILE
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    tmp.write_text(run_id + "\n")
