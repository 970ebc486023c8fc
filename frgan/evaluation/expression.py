"""The expression protocol of frgan.evaluate: does the generated face make the expression its
structure asks for?

Same identity (every test take, up to max_takes):
  - apex pairs: the apex_per_take frames whose ground-truth landmarks are farthest from frame 0
    once head pose is removed, blinks (and blink_margin frames around them) excluded;
  - blink frames: up to blinks_per_take frames where the true eyes are closed (the deepest
    frame of each blink).
  The model forecasts those frames from frame 0 as in the main protocol. MediaPipe Face Mesh
  re-detects the 68 points on every frame upscaled `upscale`x: the true frame, its JPEG
  re-encoding (the detector's noise floor), the source frame (= copying it) and each method's
  frame. Reported: point distances to the true frame's (all, lips, brows; raw and after a
  similarity fit of all 68 points; in pixels of a 64 px frame), and how far each expression measure (frgan.metrics.expression)
  moves from the source frame compared with the truth's move (amplitude ratio).
Cross identity: each test subject's first frame is driven by the other test subjects' takes
  (their landmarks retargeted onto it, as frgan.generate does; takes_per_expression per driver
  subject and expression), at the driver's apex frames. There is no true frame: the generated
  face's re-detected change is compared with the retargeted structure's change.

A frame where no face is re-detected is counted (detection.missed) and left out of the figures
it would enter, never scored as anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frgan.data.datasets import face68_points, to_image_tensor
from frgan.data.errors import LandmarkSourceUnavailable
from frgan.data.retarget import retarget
from frgan.data.shards import TakeSample
from frgan.data.topology import mesh_of
from frgan.errors import ConfigError
from frgan.evaluation.expression_summary import (
    COPY,
    NOISE_FLOOR,
    SOURCE,
    TRUTH,
    ExpressionSettings,
    calibrated,
    summarize_cross_identity,
    summarize_same_identity,
)
from frgan.metrics.expression import (
    MEASURES,
    POINT_GROUPS,
    apex_frames,
    blink_frames,
    eye_opening,
    point_distances,
)
from frgan.utils.media import to_uint8

REFERENCE_SIZE = 64  # distances are reported in pixels of a frame this size


def expression_settings(node: Any, progress: bool = True) -> ExpressionSettings | None:
    """ExpressionSettings from evaluation.expression (None: the analysis is off); ConfigError
    naming the key for a bad value."""
    if node is None or node is False:
        return None
    if not isinstance(node, (dict, DictConfig)):
        raise ConfigError(
            f"evaluation.expression must be false or a mapping of settings, got {node!r}"
        )
    values = OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node)
    if not values.pop("enabled", True):
        return None
    cross = values.pop("cross_identity", {})
    if cross is None or cross is False:
        cross = {"enabled": False}
    if not isinstance(cross, dict):
        raise ConfigError(
            f"evaluation.expression.cross_identity must be false or a mapping, got {cross!r}"
        )
    cross = dict(cross)
    options = {
        "cross_identity": cross.pop("enabled", True),
        "cross_takes_per_expression": cross.pop("takes_per_expression", 1),
        "cross_max_runs": cross.pop("max_runs", None),
    }
    unknown = sorted(set(values) - set(ExpressionSettings.__dataclass_fields__)) + [
        f"cross_identity.{key}" for key in sorted(cross)
    ]
    if unknown:
        raise ConfigError(
            f"unknown evaluation.expression setting(s) {unknown}; see conf/evaluation/default.yaml"
        )
    settings = ExpressionSettings(**values, **options, progress=progress)
    _check_settings(settings)
    return settings


def _check_settings(settings: ExpressionSettings) -> None:
    def integer(key: str, value: Any, least: int, optional: bool = False) -> None:
        if optional and value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(
                f"evaluation.expression.{key} must be an integer >= {least}"
                + (" or null" if optional else "")
                + f", got {value!r}"
            )

    def fraction(key: str, value: Any, low: float, high: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            raise ConfigError(
                f"evaluation.expression.{key} must be a number in ({low}, {high}), got {value!r}"
            )

    integer("apex_per_take", settings.apex_per_take, 1)
    integer("blinks_per_take", settings.blinks_per_take, 0)
    integer("max_takes", settings.max_takes, 1, optional=True)
    integer("blink_margin", settings.blink_margin, 0)
    integer("upscale", settings.upscale, 1)
    integer("noise_jpeg_quality", settings.noise_jpeg_quality, 1)
    if settings.noise_jpeg_quality > 100:
        raise ConfigError("evaluation.expression.noise_jpeg_quality must be at most 100")
    fraction("closed_fraction", settings.closed_fraction, 0.0, 1.0)
    fraction("min_change", settings.min_change, 0.0, 1.0)
    fraction("lowered_brow", settings.lowered_brow, 0.0, 1.0)
    if not isinstance(settings.refine_landmarks, bool):
        raise ConfigError(
            "evaluation.expression.refine_landmarks must be true or false, got "
            f"{settings.refine_landmarks!r}"
        )
    if not isinstance(settings.cross_identity, bool):
        raise ConfigError(
            "evaluation.expression.cross_identity.enabled must be true or false, got "
            f"{settings.cross_identity!r}"
        )
    integer("cross_identity.takes_per_expression", settings.cross_takes_per_expression, 1)
    integer("cross_identity.max_runs", settings.cross_max_runs, 1, optional=True)


class Redetector:
    """68 landmarks [N,68,2] (pixels of the given frames; NaN: no face) re-detected by
    MediaPipe Face Mesh on uint8 frames [N,H,W,3] upscaled `upscale`x (bicubic): at 64 px the
    detector misses small faces, at 256 px it finds them. Frames are independent images
    (static mode: no tracking from one frame to the next)."""

    def __init__(self, upscale: int, refine_landmarks: bool = False):
        from frgan.data.landmarks import build_landmark_source

        self.upscale = upscale
        self.source = build_landmark_source(
            "mediapipe",
            static_image_mode=True,
            refine_landmarks=refine_landmarks,
            structure_mesh="face68",
        )

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        height, width = frames.shape[1:3]
        size = (width * self.upscale, height * self.upscale)
        large = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames])
        return self.source(large)[..., :2].astype(np.float64) / self.upscale


def jpeg_roundtrip(frames: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB frames [N,H,W,3] encoded as JPEG at `quality` and decoded again."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    decoded = []
    for frame in frames:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), params)
        if not ok:
            raise RuntimeError("OpenCV could not encode a frame as JPEG")
        decoded.append(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return np.ascontiguousarray(np.stack(decoded))


def blink_picks(landmarks: np.ndarray, count: int, closed_fraction: float) -> np.ndarray:
    """int [≤count]: the most closed frame of each blink (a run of blink frames), the deepest
    blinks first, then in time order."""
    closed = blink_frames(landmarks, closed_fraction)
    closed[0] = False  # frame 0 is the source: nothing to forecast there
    opening = eye_opening(landmarks)
    picks = []
    for run in np.split(
        np.flatnonzero(closed), np.flatnonzero(np.diff(np.flatnonzero(closed)) > 1) + 1
    ):
        if len(run):
            picks.append(run[np.argmin(opening[run])])
    picks.sort(key=lambda t: opening[t])
    return np.sort(np.asarray(picks[:count], dtype=np.int64))


def usable_apex(
    landmarks: np.ndarray, count: int, closed_fraction: float, margin: int
) -> np.ndarray:
    """apex_frames with the frames within `margin` of a blink also left out (a blink's
    half-closed onset and tail are not expression)."""
    closed = blink_frames(landmarks, closed_fraction)
    near_blink = np.zeros_like(closed)
    for t in np.flatnonzero(closed):
        near_blink[max(0, t - margin) : t + margin + 1] = True
    masked = np.array(landmarks, dtype=np.float64)
    masked[near_blink] = np.nan
    masked[0] = landmarks[0]
    return apex_frames(masked, count, closed_fraction)


def _face68_xy(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(mesh_of(landmarks).face68(landmarks)[..., :2], dtype=np.float64)


@torch.no_grad()
def animate_frames(
    model, x0: torch.Tensor, landmarks: np.ndarray, frames: Sequence[int], render
) -> dict[str, np.ndarray]:
    """{method: uint8 [K,H,W,3]}: the model's frames `frames` of the clip driven by landmarks
    [T,P,3] from source x0 [3,H,W] (landmarks[0] is the source's). A forecast model paints
    each frame from the source alone, so only the asked frames are rendered; any other model
    sees the clip up to the last asked frame (refining looks across frames)."""
    device = next(model.parameters()).device
    frames = np.asarray(frames, dtype=np.int64)
    independent = getattr(model, "data_stage", None) == "forecast"
    wanted = frames if independent else np.arange(frames.max() + 1)
    maps = torch.from_numpy(render(np.concatenate([landmarks[:1], landmarks[wanted]])))
    points = face68_points(landmarks).to(device)
    clips = model.animate(
        x0[None].to(device),
        maps[:1].to(device),
        maps[None, 1:].to(device),
        points[None, 0],
        points[None, wanted],
    )
    picked = np.arange(len(frames)) if independent else frames
    return {name: to_uint8(clip[0, picked]) for name, clip in clips.items()}


def _progress(enabled: bool) -> Progress:
    columns = (
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _measures(points: np.ndarray) -> dict[str, float]:
    return {name: float(measure(points)) for name, measure in MEASURES.items()}


def _changes(points: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    now, before = _measures(points), _measures(reference)
    return {name: _number(now[name] - before[name]) for name in MEASURES}


def _distances(points: np.ndarray, reference: np.ndarray, scale: float) -> dict[str, dict]:
    raw = point_distances(points, reference)
    aligned = point_distances(points, reference, aligned=True)
    return {
        group: {"raw": _number(raw[group] * scale), "aligned": _number(aligned[group] * scale)}
        for group in POINT_GROUPS
    }


def _found(points: np.ndarray) -> bool:
    return bool(np.isfinite(points).all())


# ------------------------------------------------------------------ same identity


def same_identity_pairs(
    model,
    takes: Iterable[TakeSample],
    render,
    detect: Callable,
    settings: ExpressionSettings,
    advance: Callable[[], None] = lambda: None,
) -> tuple[list[dict], dict[str, Any]]:
    """Per-pair records (apex and blink frames of every take) and the selection's counts."""
    records: list[dict] = []
    counts = {"takes": 0, "takes_without_pairs": 0}
    for take in takes:
        counts["takes"] += 1
        truth = _face68_xy(take.landmarks)
        apex = usable_apex(
            truth, settings.apex_per_take, settings.closed_fraction, settings.blink_margin
        )
        blinks = blink_picks(truth, settings.blinks_per_take, settings.closed_fraction)
        kinds = {int(t): "apex" for t in apex} | {int(t): "blink" for t in blinks}
        if not kinds:
            counts["takes_without_pairs"] += 1
            advance()
            continue
        frames = np.array(sorted(kinds))
        generated = animate_frames(
            model, to_image_tensor(take.frames[0]), take.landmarks, frames, render
        )
        true_frames = take.frames[frames]
        found = detect(
            np.concatenate(
                [
                    take.frames[:1],
                    true_frames,
                    jpeg_roundtrip(true_frames, settings.noise_jpeg_quality),
                ]
                + [generated[name] for name in generated]
            )
        )
        source = found[0]
        rows = {
            TRUTH: found[1 : 1 + len(frames)],
            NOISE_FLOOR: found[1 + len(frames) : 1 + 2 * len(frames)],
        }
        for index, name in enumerate(generated):
            start = 1 + (2 + index) * len(frames)
            rows[name] = found[start : start + len(frames)]
        scale = REFERENCE_SIZE / take.frames.shape[1]
        for k, t in enumerate(frames):
            detected = {name: points[k] for name, points in rows.items()} | {SOURCE: source}
            compared = {name: detected[name] for name in (*generated, NOISE_FLOOR)} | {COPY: source}
            records.append(
                {
                    "take": take.key,
                    "subject": take.meta.get("subject", "?"),
                    "expression": take.meta.get("expression", "?"),
                    "frame": int(t),
                    "kind": kinds[int(t)],
                    "found": {name: _found(points) for name, points in detected.items()},
                    "truth_landmarks_change": _changes(truth[t], truth[0]),
                    "change": {
                        name: _changes(detected[name], source) for name in (TRUTH, *generated)
                    },
                    "distance": {
                        name: _distances(points, detected[TRUTH], scale)
                        for name, points in compared.items()
                    },
                }
            )
        advance()
    return records, counts


# ------------------------------------------------------------------ cross identity


def subset(items: Sequence, limit: int | None, seed: int) -> list:
    """`limit` of the items drawn at random (seeded), kept in their order; all when None."""
    if limit is None or limit >= len(items):
        return list(items)
    picked = np.random.default_rng(seed).choice(len(items), size=limit, replace=False)
    return [items[i] for i in sorted(picked)]


def cross_identity_runs(
    takes: Sequence[TakeSample], takes_per_expression: int, max_runs: int | None, seed: int = 0
) -> list[tuple[TakeSample, TakeSample]]:
    """(target, driver) pairs: each subject's first take gives the target face; every other
    subject's first takes_per_expression takes of each expression drive it (max_runs of them
    at random when set)."""
    by_subject: dict[str, list[TakeSample]] = defaultdict(list)
    for take in takes:
        by_subject[take.meta.get("subject", "?")].append(take)
    runs = []
    for target_subject, own in by_subject.items():
        for driver_subject, driver_takes in by_subject.items():
            if driver_subject == target_subject:
                continue
            used: dict[str, int] = defaultdict(int)
            for driver in driver_takes:
                expression = driver.meta.get("expression", "?")
                if used[expression] < takes_per_expression:
                    used[expression] += 1
                    runs.append((own[0], driver))
    return subset(runs, max_runs, seed)


def cross_identity_pairs(
    model,
    runs,
    render,
    detect: Callable,
    settings: ExpressionSettings,
    advance: Callable[[], None] = lambda: None,
) -> list[dict]:
    """Per-frame records of the cross-identity runs at each driver's apex frames."""
    records = []
    for target, driver in runs:
        driver_points = _face68_xy(driver.landmarks)
        frames = usable_apex(
            driver_points, settings.apex_per_take, settings.closed_fraction, settings.blink_margin
        )
        if len(frames) == 0:
            advance()
            continue
        driven = retarget(driver.landmarks, target.landmarks[0])
        generated = animate_frames(model, to_image_tensor(target.frames[0]), driven, frames, render)
        found = detect(
            np.concatenate([target.frames[:1]] + [generated[name] for name in generated])
        )
        source, structure = found[0], _face68_xy(driven)
        scale = REFERENCE_SIZE / target.frames.shape[1]
        target_points = _face68_xy(target.landmarks[0])
        for k, t in enumerate(frames):
            detected = {
                name: found[1 + index * len(frames) + k] for index, name in enumerate(generated)
            }
            records.append(
                {
                    "target_take": target.key,
                    "target_subject": target.meta.get("subject", "?"),
                    "driver_take": driver.key,
                    "driver_subject": driver.meta.get("subject", "?"),
                    "expression": driver.meta.get("expression", "?"),
                    "frame": int(t),
                    "found": {name: _found(p) for name, p in detected.items()}
                    | {SOURCE: _found(source)},
                    "structure_change": _changes(structure[t], target_points),
                    "change": {name: _changes(p, source) for name, p in detected.items()},
                    "distance": {
                        name: _distances(p, structure[t], scale) for name, p in detected.items()
                    }
                    | {SOURCE: _distances(source, target_points, scale)},
                }
            )
        advance()
    return records


def run_expression_protocol(
    model,
    takes: Sequence[TakeSample],
    render,
    settings: ExpressionSettings,
    seed: int = 0,
    detector: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Everything the expression analysis measures (metrics.json's "expression"); status
    "skipped" with the reason when the detector is not installed. `seed` draws the takes and
    driver runs when max_takes / cross_identity.max_runs bound them."""
    if detector is None:
        try:
            detector = Redetector(settings.upscale, settings.refine_landmarks)
        except LandmarkSourceUnavailable as error:
            return {"status": "skipped", "reason": str(error)}
    every_take = list(takes)
    if not every_take:
        return {"status": "skipped", "reason": "the test split has no takes"}
    takes = subset(every_take, settings.max_takes, seed)
    methods = list(
        animate_frames(model, to_image_tensor(takes[0].frames[0]), takes[0].landmarks, [0], render)
    )
    runs = (
        cross_identity_runs(
            every_take, settings.cross_takes_per_expression, settings.cross_max_runs, seed
        )
        if settings.cross_identity
        else []
    )
    with _progress(settings.progress) as bar:
        task = bar.add_task("expression", total=len(takes), unit="takes")
        records, counts = same_identity_pairs(
            model, takes, render, detector, settings, lambda: bar.advance(task)
        )
        cross = []
        if runs:
            task = bar.add_task("cross-identity", total=len(runs), unit="drivers")
            cross = cross_identity_pairs(
                model, runs, render, detector, settings, lambda: bar.advance(task)
            )
    settings_record = {k: v for k, v in asdict(settings).items() if k != "progress"}
    payload: dict[str, Any] = {
        "status": "computed",
        "settings": settings_record,
        "detector": "MediaPipe Face Mesh (static images"
        + (", refined lips and eyes" if settings.refine_landmarks else "")
        + f"), frames upscaled {settings.upscale}x (bicubic), its 68-point subset",
        "distance_unit": f"pixels of a {REFERENCE_SIZE} px frame",
        "methods": methods,
        "takes": counts["takes"],
        "takes_without_pairs": counts["takes_without_pairs"],
        "same_identity": summarize_same_identity(records, methods, settings),
        "pairs": records,
    }
    if settings.cross_identity:
        summary = summarize_cross_identity(cross, methods, settings)
        reading = payload["same_identity"]["detector_calibration"]
        summary["amplitude"] = calibrated(summary["amplitude"], reading)
        payload["cross_identity"] = summary | {"records": cross}
    return payload
