"""Both stages of FRGAN in one command: forecast, then refine on the forecast's best
checkpoint, each tested on the held-out subjects.

    python -m frgan.train experiment=two_stage [overrides for both stages ...]

Folder layout (one pipeline = one run folder):
    outputs/two_stage/runs/<date>_<time>/
        pipeline.json                  the overrides it was started with, and its progress
        forecast/  refine/             ordinary frgan.train run folders (checkpoints/, csv/,
                                       samples/, wandb/), each with done.json once tested
        summary.json  summary.md       held-out test table: copy first frame | forecast | refined

Command-line overrides apply to both stages (e.g. trainer.precision=bf16-mixed); the
experiment's `two_stage.forecast` / `two_stage.refine` lists apply to one stage only
(the user's overrides win). Rerunning the same command after a kill continues: the newest
pipeline under outputs/two_stage/runs started with the same overrides and not finished is
taken up again (a finished stage is skipped, an interrupted one resumes from its
last.ckpt); the rerun's own new folder keeps only its log. `hydra.run.dir=<pipeline>`
continues that pipeline explicitly; `two_stage.resume=false` always starts afresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from frgan.evaluation_report import format_cell
from frgan.metrics import registry
from frgan.utils.checkpoint_io import LAST
from frgan.utils.files import exclusive_folder, write_json_atomic, write_text_atomic
from frgan.utils.loggers import finish_loggers
from frgan.utils.ranks import is_global_zero

log = logging.getLogger(__name__)

STAGES = ("forecast", "refine")
STATE = "pipeline.json"
DONE = "done.json"
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# the summary table: a row per metric of frgan.metrics.registry, read from
# refine/test/<candidate><metric> for each column's candidate prefix
SUMMARY_COLUMNS = (("copy first frame", "copy_"), ("forecast", "forecast_"), ("refined", ""))


# a stage's training: its config -> (metrics, objects), as frgan.train.train
StageRunner = Callable[[DictConfig], tuple[dict[str, float], dict[str, Any]]]


def run_two_stage(
    cfg: DictConfig, overrides: list[str], run_stage: StageRunner
) -> tuple[dict[str, float], dict]:
    """Train and test both stages with `run_stage` (or continue an unfinished pipeline).
    `overrides` are the command line's; returns the metrics of both stages as
    forecast/<name>, refine/<name> and the objects of the last stage trained."""
    settings = cfg.two_stage
    shared = [o for o in overrides if not o.lstrip("+~").startswith(("experiment=", "two_stage"))]
    root = Path(cfg.paths.output_dir)
    pipeline = _pipeline_folder(root, shared, bool(settings.resume))
    pipeline.mkdir(parents=True, exist_ok=True)
    # the launching process holds the pipeline (DDP's processes for ranks > 0 run this too)
    holding = exclusive_folder(
        pipeline, "two-stage pipeline", "start another one with two_stage.resume=false"
    )
    with holding if is_global_zero() else nullcontext():
        return _run_stages(pipeline, settings, shared, run_stage)


def _run_stages(
    pipeline: Path, settings: DictConfig, shared: list[str], run_stage: StageRunner
) -> tuple[dict[str, float], dict]:
    state = _read_json(pipeline / STATE) or {"overrides": shared, "finished": False}
    write_json_atomic(pipeline / STATE, state)
    print(f"Pipeline folder: {pipeline.resolve()}")

    metrics: dict[str, float] = {}
    objects: dict[str, Any] = {}
    forecast_best: str | None = None
    for stage in STAGES:
        folder = pipeline / stage
        done = _read_json(folder / DONE)
        if done is not None:
            log.info("two_stage: %s is done (%s), skipping it", stage, folder)
        else:
            stage_overrides = [f"model={stage}", *settings[stage], *shared]
            if stage == "refine":
                stage_overrides.append(f"model.forecast_ckpt={_quoted(forecast_best)}")
            last = folder / "checkpoints" / LAST
            if last.is_file():
                log.info("two_stage: %s resumes from %s", stage, last)
                stage_overrides.append(f"ckpt_path={_quoted(last)}")
            stage_metrics, objects = run_stage(compose_stage(stage_overrides, folder))
            finish_loggers()
            trainer = objects["trainer"]
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            done = {"best_checkpoint": best or str(last), "metrics": stage_metrics}
            write_json_atomic(folder / DONE, done)
        metrics.update({f"{stage}/{k}": v for k, v in done["metrics"].items()})
        if stage == "forecast":
            forecast_best = done["best_checkpoint"]

    write_json_atomic(pipeline / STATE, {**state, "finished": True})
    write_summary(pipeline, metrics)
    return metrics, objects


def compose_stage(overrides: list[str], run_dir: Path) -> DictConfig:
    """conf/train.yaml with `overrides`, run in `run_dir` (inside a Hydra app: its config
    search path; otherwise the package's conf/)."""
    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name="train.yaml", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train.yaml", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # like a run folder Hydra made: frgan.generate reads the stage's data config from it
    (run_dir / ".hydra").mkdir(exist_ok=True)
    write_text_atomic(run_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return cfg


def _pipeline_folder(root: Path, overrides: list[str], resume: bool) -> Path:
    """root itself when it already holds a pipeline (hydra.run.dir=<pipeline>), else the
    newest unfinished pipeline beside it started with the same overrides, else root."""
    if (root / STATE).is_file() or not resume:
        return root
    earlier = sorted(
        (p for p in root.parent.glob(f"*/{STATE}") if p.parent != root),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in earlier:
        state = _read_json(path) or {}
        if state.get("overrides") == overrides:
            if state.get("finished"):
                return root  # the newest such pipeline finished: this is a new one
            log.warning("two_stage: continuing the unfinished pipeline %s", path.parent)
            return path.parent
    return root


def write_summary(pipeline: Path, metrics: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """The held-out test table of the refine stage (copy first frame | forecast | refined)
    as summary.json and summary.md, printed too. A metric the stage did not log (a pipeline
    finished before the metric existed) is null, "n/a" in the table; a row with none is left out."""
    table = {
        metric.row_label: {
            column: metrics.get(f"refine/test/{prefix}{metric.key}")
            for column, prefix in SUMMARY_COLUMNS
        }
        for metric in registry.select()
    }
    table = {
        row: values for row, values in table.items() if any(v is not None for v in values.values())
    }
    write_json_atomic(pipeline / "summary.json", table)
    header = "| test (held-out subjects) | " + " | ".join(c for c, _ in SUMMARY_COLUMNS) + " |"
    lines = [header, "|---" * (len(SUMMARY_COLUMNS) + 1) + "|"]
    cells = {
        row: [format_cell(v, "{:.4g}") for v in values.values()] for row, values in table.items()
    }
    for row in table:
        lines.append(f"| {row} | " + " | ".join(cells[row]) + " |")
    write_text_atomic(pipeline / "summary.md", "\n".join(lines) + "\n")

    shown = Table(title=f"two_stage test metrics ({pipeline})")
    for column in ("metric", *(c for c, _ in SUMMARY_COLUMNS)):
        shown.add_column(column, justify="right")
    for row in table:
        shown.add_row(row, *cells[row])
    Console().print(shown)
    return table


def _quoted(value: Any) -> str:
    """A path as a Hydra override value (quoted: paths may hold '=', ',' or spaces)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
