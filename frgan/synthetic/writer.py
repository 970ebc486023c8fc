"""Write the synthetic set in MUG's layout (frgan/synthetic/files.py): validation, resume,
atomic takes, dataset card.

A take is built in a hidden sibling folder and renamed into place once its images and
ground_truth.npz are written, so a take folder that exists is complete; an interrupted
run resumes by redoing only the missing takes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from frgan.errors import ConfigError
from frgan.synthetic.expressions import ACTION_UNITS, EXPRESSION_ACTION_UNITS, EXPRESSIONS
from frgan.synthetic.files import (
    CARD_NAME,
    FRAME_GLOB,
    GROUND_TRUTH_NAME,
    IN_PROGRESS_NAME,
    LAYOUT,
    frame_name,
    take_name,
)
from frgan.synthetic.head import IDENTITY_NAMES
from frgan.synthetic.preview import write_preview
from frgan.synthetic.take_video import head_and_basis, render_take
from frgan.synthetic.takes import POSE_NAMES
from frgan.utils.checks import check_int
from frgan.utils.files import write_json_atomic
from frgan.utils.stops import exit_quietly_on_stop

GENERATOR_VERSION = "1.1"  # 1.1: landmarks_468 in ground_truth.npz
MIN_IMAGE_SIZE = 32
JPEG_QUALITY = 95


@dataclass(frozen=True)
class SynthConfig:
    """What decides the content of the set (the card records it; resuming requires it equal)."""

    subjects: int = 24
    takes_per_expression: int = 2
    image_size: int = 128
    min_frames: int = 24
    max_frames: int = 64
    expressions: tuple = EXPRESSIONS
    seed: int = 0
    save_vertices: bool = False

    def subject_name(self, subject: int) -> str:
        return f"s{subject + 1:0{max(3, len(str(self.subjects)))}d}"


def validate_config(**options) -> SynthConfig:
    """Check every option before any work; one ConfigError naming the bad key otherwise."""

    def integer(name, minimum):
        return check_int(f"synth option {name}", options[name], minimum)

    subjects = integer("subjects", 1)
    takes = integer("takes_per_expression", 1)
    image_size = integer("image_size", 0)
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"synth option image_size={image_size} is too small for a face; use >= {MIN_IMAGE_SIZE} pixels"
        )
    min_frames, max_frames = integer("min_frames", 2), integer("max_frames", 2)
    if min_frames > max_frames:
        raise ConfigError(
            f"synth option min_frames={min_frames} exceeds max_frames={max_frames}; make min_frames <= max_frames"
        )
    seed = integer("seed", 0)
    expressions = options["expressions"]
    if expressions is None:
        expressions = EXPRESSIONS
    if isinstance(expressions, str):
        expressions = (expressions,)
    expressions = tuple(expressions)
    unknown = [e for e in expressions if e not in EXPRESSIONS]
    if unknown or not expressions or len(set(expressions)) != len(expressions):
        raise ConfigError(
            f"synth option expressions={list(expressions)} must be distinct names from {list(EXPRESSIONS)}"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    return SynthConfig(
        subjects=subjects,
        takes_per_expression=takes,
        image_size=image_size,
        min_frames=min_frames,
        max_frames=max_frames,
        expressions=tuple(e for e in EXPRESSIONS if e in expressions),
        seed=seed,
        save_vertices=bool(options["save_vertices"]),
    )


def config_record(config: SynthConfig) -> dict:
    record = asdict(config)
    record["expressions"] = list(config.expressions)
    return record


# --------------------------------------------------------------------------- files


def take_dir(root: Path, config: SynthConfig, subject: int, expression: str, take: int) -> Path:
    return root / config.subject_name(subject) / expression / take_name(take)


def write_take(root: Path, config: SynthConfig, subject: int, expression: str, take: int) -> int:
    """Render one take and move it into place complete; returns its number of frames."""
    result = render_take(
        config.seed,
        subject,
        expression,
        take,
        image_size=config.image_size,
        min_frames=config.min_frames,
        max_frames=config.max_frames,
    )
    final = take_dir(root, config, subject, expression, take)
    staging = final.with_name(f".{final.name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for index, image in enumerate(result.images):
        ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {final}/{frame_name(index)}")
        (staging / frame_name(index)).write_bytes(encoded.tobytes())
    arrays = dict(
        landmarks=result.landmarks,
        landmarks_468=result.landmarks_468,
        identity=result.identity,
        identity_names=np.array(IDENTITY_NAMES),
        expression=result.action_units,
        action_units=np.array(ACTION_UNITS),
        expression_label=np.array(expression),
        intensity=np.float32(result.intensity),
        apex_frame=np.int64(result.apex_frame),
        pose=result.pose,
        pose_names=np.array(POSE_NAMES),
        subject=np.array(config.subject_name(subject)),
        image_size=np.int64(config.image_size),
    )
    if config.save_vertices:
        arrays["vertices"] = result.vertices
        arrays["faces"] = head_and_basis()[0].faces
    with open(staging / GROUND_TRUTH_NAME, "wb") as handle:  # the folder is not visible yet
        np.savez(handle, **arrays)
    shutil.rmtree(final, ignore_errors=True)  # an incomplete take left by an older run
    os.replace(staging, final)
    return len(result.images)


def _write_take_job(job) -> tuple:
    root, config, subject, expression, take = job
    return job[2:], write_take(root, config, subject, expression, take)


def _init_worker() -> None:
    exit_quietly_on_stop()
    cv2.setNumThreads(1)
    head_and_basis()


# --------------------------------------------------------------------------- run


def prepare_root(root: Path, config: SynthConfig, overwrite: bool) -> str:
    """Decide what to do with the output folder: 'new', 'resume' or 'complete'."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(
            f"Synthetic dataset root {root} exists and is not a folder; choose another root."
        )
    if not root.exists() or not any(root.iterdir()):
        root.mkdir(parents=True, exist_ok=True)
        return "new"
    if overwrite:
        for entry in root.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return "new"
    for name, state in ((CARD_NAME, "complete"), (IN_PROGRESS_NAME, "resume")):
        path = root / name
        if path.is_file():
            try:
                recorded = json.loads(path.read_text()).get("config")
            except (OSError, json.JSONDecodeError):
                recorded = None
            if recorded == config_record(config):
                return state
            raise FileExistsError(
                f"{root} holds a synthetic dataset made with a different config ({path.name}: {recorded}); "
                "pass overwrite=true to replace it, or choose another root."
            )
    raise FileExistsError(
        f"Output folder {root} is not empty; pass overwrite=true to replace its contents, or choose another root."
    )


def clean_partial_takes(root: Path, config: SynthConfig, takes) -> list:
    """Remove staging folders and incomplete takes; return the takes still to generate."""
    for staging in root.glob("*/*/.take*.partial*"):
        shutil.rmtree(staging, ignore_errors=True)
    missing = []
    for subject, expression, take in takes:
        folder = take_dir(root, config, subject, expression, take)
        if not (folder / GROUND_TRUTH_NAME).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            missing.append((subject, expression, take))
    return missing


def dataset_card(root: Path, config: SynthConfig, frames: int) -> dict:
    takes = config.subjects * len(config.expressions) * config.takes_per_expression
    return {
        "name": "frgan-synthetic",
        "generator": "frgan.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "config": config_record(config),
        "counts": {
            "subjects": config.subjects,
            "expressions": len(config.expressions),
            "takes": takes,
            "frames": frames,
        },
        "subjects": [config.subject_name(s) for s in range(config.subjects)],
        "expressions": list(config.expressions),
        "layout": LAYOUT,
        "ground_truth": {
            "landmarks": "float32 [T,68,3] image pixels (x right, y down), z depth in pixels, smaller z nearer",
            "landmarks_468": "float32 [T,468,3] the same in MediaPipe Face Mesh's 468-point topology",
            "expression": "float32 [T,K] action-unit weights per frame (names in action_units)",
            "identity": "float32 [K] identity shape parameters (names in identity_names)",
            "pose": "float32 [T,6] yaw, pitch, roll (radians), tx, ty (pixels), scale (pixels per model unit)",
            "apex_frame": "int, a frame at full expression without a blink",
            "vertices": "float32 [T,N,3] posed dense mesh (only with save_vertices) + faces int32 [M,3]",
        },
        "action_units": list(ACTION_UNITS),
        "expression_action_units": EXPRESSION_ACTION_UNITS,
        "identity_parameters": list(IDENTITY_NAMES),
    }


def count_frames(root: Path, config: SynthConfig, takes) -> int:
    return sum(len(list(take_dir(root, config, *t).glob(FRAME_GLOB))) for t in takes)


def generate_dataset(
    root,
    *,
    subjects: int = 24,
    takes_per_expression: int = 2,
    image_size: int = 128,
    min_frames: int = 24,
    max_frames: int = 64,
    expressions=None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    preview: bool = False,
    save_vertices: bool = False,
    progress: bool = True,
) -> dict:
    """Generate (or resume) the synthetic expression-video set under `root`.

    Deterministic for a seed whatever `workers` is (processes over takes; None = all
    cores, 0 or 1 = in this process). Returns a summary dict (counts, timing, paths).
    """
    config = validate_config(
        subjects=subjects,
        takes_per_expression=takes_per_expression,
        image_size=image_size,
        min_frames=min_frames,
        max_frames=max_frames,
        expressions=expressions,
        seed=seed,
        save_vertices=save_vertices,
    )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ConfigError(f"synth option workers must be null or an integer >= 0, got {workers!r}")
    if root is None or str(root) == "":
        raise ConfigError("synth option root must be a folder path, got nothing")
    root = Path(root).expanduser()
    started = time.perf_counter()
    state = prepare_root(root, config, overwrite)
    all_takes = [
        (subject, expression, take)
        for subject in range(config.subjects)
        for expression in config.expressions
        for take in range(config.takes_per_expression)
    ]
    todo = [] if state == "complete" else clean_partial_takes(root, config, all_takes)
    if state != "complete":
        write_json_atomic(root / IN_PROGRESS_NAME, {"config": config_record(config)})
    _run_jobs(root, config, todo, workers, progress)

    frames = count_frames(root, config, all_takes)
    card = dataset_card(root, config, frames)
    if state != "complete":
        write_json_atomic(root / CARD_NAME, card)
        (root / IN_PROGRESS_NAME).unlink(missing_ok=True)
    preview_files = []
    if preview:
        preview_files = [str(p) for p in write_preview(root)]
    return {
        "root": str(root),
        "state": state,
        "subjects": config.subjects,
        "expressions": list(config.expressions),
        "takes": len(all_takes),
        "takes_generated": len(todo),
        "frames": frames,
        "seconds": round(time.perf_counter() - started, 2),
        "card": str(root / CARD_NAME),
        "preview": preview_files,
    }


def _run_jobs(
    root: Path, config: SynthConfig, todo: list, workers: int | None, progress: bool
) -> None:
    if not todo:
        return
    workers = (os.cpu_count() or 1) if workers is None else workers
    workers = min(workers, len(todo))
    jobs = [(root, config, *t) for t in todo]
    columns = (
        TextColumn("[bold]synth[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("takes", total=len(jobs))
        if workers <= 1:
            for job in jobs:
                _write_take_job(job)
                bar.advance(task)
            return
        # Spawned workers, one BLAS/OpenCV thread each: the parallelism is over takes.
        saved = {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        }
        os.environ.update({k: "1" for k in saved})
        try:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_take_job, jobs):
                    bar.advance(task)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
