"""Sweeps (Hydra multirun, Optuna): each job records its result, a Hydra callback tables them.

Under `-m`, `run_job` runs one job of the sweep: it names the job's wandb run after its overrides
in a group shared by the whole sweep, catches the job's failure (a bad value, a diverged loss, out
of memory) so that the other jobs still run, and writes `<job folder>/sweep_result.json`. A job
that failed returns None, which Hydra's Optuna sweeper records as a failed trial.

`SweepSummary` (registered under `hydra.callbacks` in conf/hydra/default.yaml) reads those files
and writes `<sweep folder>/summary.md` and `summary.csv`: the overrides of every job, its
optimized metric and the key validation/test metrics, best first, failed jobs last with their
error. It refreshes the table after every job and prints it when the sweep ends. It knows nothing
of the model: it reads `optimized_metric`, `optimized_mode` and whatever metrics the job returned.
"""

from __future__ import annotations

import csv
import fcntl
import gc
import io
import json
import logging
import math
import time
import traceback
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from frgan.metrics import registry
from frgan.utils.cli import USER_ERRORS, user_error_message
from frgan.utils.files import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

RESULT_FILE = "sweep_result.json"
ERROR_FILE = "sweep_error.txt"  # the traceback of a failed job
SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
WANDB_TAG_LENGTH = 64  # wandb refuses longer tags


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(cfg: DictConfig, fit: Callable[[DictConfig], dict[str, float]]) -> float | None:
    """Run `fit(cfg) -> metrics` and return the optimized metric.

    A single run lets errors through (the entry point reports them). A job of a multirun records
    its result or its error in its folder and returns None when it failed, so the sweep goes on.
    """
    if not in_multirun():
        return _optimized_value(cfg, fit(cfg))
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    group = sweep_group(cfg.get("task_name", "train"), hydra_cfg.sweep.dir)
    label_wandb_run(cfg, group, int(hydra_cfg.job.num), overrides)

    job_dir = Path(hydra_cfg.runtime.output_dir)
    started = time.monotonic()
    metrics: dict[str, float] = {}
    error = None
    try:
        metrics = fit(cfg)
    except Exception as exc:  # noqa: BLE001 - any failure of one job is reported, not raised
        error = describe_error(exc)
        write_text_atomic(job_dir / ERROR_FILE, traceback.format_exc())
        log.error("job %s failed: %s (traceback: %s)", hydra_cfg.job.num, error, ERROR_FILE)
    _release_memory()
    name = cfg.get("optimized_metric")
    value = _optimized_value(cfg, metrics)
    if error is None and name and (value is None or not math.isfinite(value)):
        error = f"the optimized metric {name} is {value}" + (
            " (the losses diverged?)" if value is not None else " (the job did not log it)"
        )
    record = {
        "job": int(hydra_cfg.job.num),
        "overrides": overrides,
        "status": "failed" if error else "ok",
        "error": error,
        "optimized_metric": name,
        "optimized_mode": cfg.get("optimized_mode", "max"),
        "value": value if error is None else None,
        "metrics": metrics,
        "seconds": round(time.monotonic() - started, 1),
        "wandb_group": group,
    }
    write_json_atomic(job_dir / RESULT_FILE, record)
    return record["value"]


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line: the user-facing message behind Hydra's wrapping, else the exception itself.

    An error re-raised from a spawned DDP process carries the child's traceback as its message:
    its last line (the child's exception) is the one shown.
    """
    message = user_error_message(exc)
    if message is not None:
        kind = next(
            (
                type(e).__name__
                for e in _causes(exc)
                if isinstance(e, USER_ERRORS) and not isinstance(e, InstantiationException)
            ),
            None,
        )
        text = " ".join(message.split())
        return (f"{kind}: {text}" if kind else text)[:limit]
    message = str(exc)
    if "Traceback (most recent call last)" in message:
        message = [line for line in message.splitlines() if line.strip()][-1]
        return " ".join(message.split())[:limit]
    text = " ".join(message.split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:limit]


def _causes(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__


def _optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


def _release_memory() -> None:
    """After a failed job (out of memory above all) give the next job the device's memory."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sweep_group(task_name: str, sweep_dir: str | Path) -> str:
    """The wandb group of every run of one sweep: task and sweep folder name."""
    return f"{task_name}-{Path(sweep_dir).name}"[:128]


def label_wandb_run(cfg: DictConfig, group: str, job: int, overrides: Sequence[str]) -> None:
    """Put a sweep's wandb runs in one group, named and tagged by their overrides."""
    loggers = cfg.get("logger") or {}
    wandb_cfg = loggers.get("wandb") if isinstance(loggers, DictConfig) else None
    if wandb_cfg is None:
        return
    label = " ".join(overrides) or "(no overrides)"
    with open_dict(wandb_cfg):
        wandb_cfg._convert_ = "all"  # wandb.init takes plain dicts and lists
        wandb_cfg.group = group
        wandb_cfg.name = f"{job}: {label}"[:128]
        wandb_cfg.tags = [
            *(wandb_cfg.get("tags") or []),
            *(o[:WANDB_TAG_LENGTH] for o in overrides),
        ]
        wandb_cfg.config = {"sweep": {"group": group, "job": job, "overrides": list(overrides)}}


# ------------------------------------------------------------------------------ summary


def read_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One record per job folder of a sweep (a job without a result file is listed as such)."""
    records = []
    for overrides_file in sorted(Path(sweep_dir).rglob(".hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        result = job_dir / RESULT_FILE
        if result.is_file():
            record = json.loads(result.read_text())
        else:
            record = {
                "overrides": list(OmegaConf.load(overrides_file)),
                "status": "no result",
                "error": "no sweep_result.json: still running, or killed",
                "value": None,
                "metrics": {},
            }
        record["folder"] = str(job_dir.relative_to(sweep_dir))
        records.append(record)
    return records


def swept_keys(sweep_dir: str | Path) -> set[str] | None:
    """Keys the sweep varies, from its multirun.yaml: command-line sweeps (a,b / range / choice)
    and the Optuna sweeper's params, less those fixed on the command line. None: unknown."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = Path(sweep_dir) / "multirun.yaml"
    if not saved.is_file():
        return None
    hydra_cfg = OmegaConf.load(saved).hydra
    swept, fixed = set(), set()
    for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
        (swept if override.is_sweep_override() else fixed).add(override.get_key_element())
    params = OmegaConf.select(hydra_cfg, "sweeper.params") or {}
    # a searched parameter fixed on the command line does not vary; a key swept there does,
    # even when an earlier override of the command line gave it a single value
    return swept | (set(params) - fixed)


def rank(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first by the optimized metric (its mode: max or min); failed jobs last."""

    def key(record):
        value = record.get("value")
        if value is None:
            return (1, 0.0, record["folder"])
        sign = -1.0 if record.get("optimized_mode", "max") == "max" else 1.0
        return (0, sign * value, record["folder"])

    return sorted(records, key=key)


def summary_tables(
    records: list[dict[str, Any]],
    key_metrics: Sequence[str] | None = None,
    swept: set[str] | None = None,
) -> tuple[str, str]:
    """(Markdown, CSV) of ranked job records; `key_metrics`: glob patterns of the metrics
    shown beside the optimized one (None: frgan.metrics.registry's sweep columns; the CSV has
    every metric); `swept`: the keys the sweep varies (None: the overrides that differ
    between the records)."""
    records = rank(records)
    if key_metrics is None:
        key_metrics = registry.sweep_columns()
    optimized = next((r["optimized_metric"] for r in records if r.get("optimized_metric")), None)
    if swept is None:
        all_overrides = [set(r["overrides"]) for r in records]
        common = set.intersection(*all_overrides) if all_overrides else set()
    else:
        common = {o for r in records for o in r["overrides"] if o.split("=")[0] not in swept}
    seen = sorted({m for r in records for m in r.get("metrics", {})})
    shown = [m for m in seen if m != optimized and any(fnmatchcase(m, p) for p in key_metrics)]
    shown.sort(key=lambda m: next(i for i, p in enumerate(key_metrics) if fnmatchcase(m, p)))

    def varying(record):
        return " ".join(o for o in record["overrides"] if o not in common) or "(none)"

    headers = ["rank", "job", "overrides", "status", optimized or "value", *shown]
    rows = []
    for place, record in enumerate(records, start=1):
        metrics = record.get("metrics", {})
        rows.append(
            [
                str(place) if record.get("value") is not None else "-",
                record["folder"],
                varying(record),
                record["status"],
                _number(record.get("value")),
                *(_number(metrics.get(m)) for m in shown),
            ]
        )
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    if common:
        lines += ["", "Common to every job: `" + " ".join(sorted(common)) + "`"]
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed or unfinished jobs:", ""]
        lines += [f"- job {r['folder']} ({varying(r)}): {r.get('error')}" for r in failed]
    markdown = "\n".join(lines) + "\n"

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "job", "overrides", "status", "error", "value", *seen])
    for row, record in zip(rows, records, strict=True):
        metrics = record.get("metrics", {})
        writer.writerow(
            [
                row[0],
                record["folder"],
                " ".join(record["overrides"]),
                record["status"],
                record.get("error") or "",
                "" if record.get("value") is None else record["value"],
                *("" if metrics.get(m) is None else metrics[m] for m in seen),
            ]
        )
    return markdown, buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_summary(sweep_dir: str | Path, key_metrics: Sequence[str] | None = None) -> str | None:
    """Write summary.md and summary.csv in the sweep folder; return the Markdown (None: no jobs)."""
    records = read_results(sweep_dir)
    if not records:
        return None
    markdown, table = summary_tables(records, key_metrics, swept_keys(sweep_dir))
    write_text_atomic(Path(sweep_dir) / SUMMARY_MD, markdown)
    write_text_atomic(Path(sweep_dir) / SUMMARY_CSV, table)
    return markdown


def sqlite_storage_path(storage: Any) -> Path | None:
    """The database file of an Optuna `sqlite:///<path>` storage URL, else None."""
    prefix = "sqlite:///"
    if isinstance(storage, str) and storage.startswith(prefix):
        return Path(storage[len(prefix) :])
    return None


def fail_abandoned_trials(storage: str, study_name: str) -> list[int]:
    """Mark FAIL the trials of a study that a killed sweep left RUNNING (call it only while no
    other sweep runs on `storage`); returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    backend = optuna.storages.get_storage(storage)
    try:
        study_id = backend.get_study_id_from_name(study_name)
    except KeyError:  # a new study
        return []
    running = backend.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        backend.set_trial_state(trial._trial_id, TrialState.FAIL)
    return [trial.number for trial in running]


class SweepSummary(Callback):
    """Hydra callback: the summary table of a multirun, refreshed after each job.

    With an Optuna sqlite study it also cleans up after killed sweeps: every sweep on the study
    holds a shared flock on `<database>.sweeps.lock` while it runs (released by the system when
    it ends, killed too). A sweep that starts while no other holds it knows that the study's
    RUNNING trials belong to sweeps that were killed, and marks them FAIL."""

    def __init__(self, metrics: Sequence[str] | None = None):
        self.metrics = None if metrics is None else tuple(metrics)
        self._study_lock = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # sqlite creates the database file but not its folder (the study outlives the sweep)
        storage = OmegaConf.select(config, "hydra.sweeper.storage")
        database = sqlite_storage_path(storage)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
            log.info("Optuna study storage: %s (re-run the command to continue it)", database)
            study = OmegaConf.select(config, "hydra.sweeper.study_name")
            self._study_lock = open(database.with_name(database.name + ".sweeps.lock"), "a")
            try:
                fcntl.flock(self._study_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("another sweep runs on %s: its RUNNING trials are left alone", database)
            else:
                if database.is_file() and study:
                    abandoned = fail_abandoned_trials(storage, study)
                    if abandoned:
                        log.warning(
                            "Optuna study %s: trial(s) %s were left RUNNING by a sweep that was "
                            "killed; marked FAIL",
                            study,
                            ", ".join(map(str, abandoned)),
                        )
            fcntl.flock(self._study_lock, fcntl.LOCK_SH)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(config.hydra.sweep.dir, self.metrics)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._study_lock is not None:
            self._study_lock.close()
            self._study_lock = None
        sweep_dir = Path(config.hydra.sweep.dir)
        markdown = write_summary(sweep_dir, self.metrics)
        if markdown is None:
            return
        print(f"\nSweep summary ({sweep_dir / SUMMARY_MD}, {SUMMARY_CSV}):\n\n{markdown}")
