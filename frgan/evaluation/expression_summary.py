"""The expression analysis' figures from its per-pair records (pure functions): landmark
distance tables, amplitude ratios overall / per expression / per subject, lowered brows,
blinks, missed detections. A record is one scored frame (see frgan/evaluation/expression.py):
its `found`, `change`, `truth_landmarks_change` (or `structure_change`) and `distance` entries,
None where no face was re-detected."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frgan.metrics.expression import MEASURES, POINT_GROUPS, amplitude_ratio


@dataclass(frozen=True)
class ExpressionSettings:
    apex_per_take: int = 3
    blinks_per_take: int = 1
    max_takes: int | None = None
    closed_fraction: float = 0.5
    blink_margin: int = 2
    upscale: int = 4
    refine_landmarks: bool = False
    noise_jpeg_quality: int = 90
    min_change: float = 0.02
    lowered_brow: float = 0.015
    cross_identity: bool = True
    cross_takes_per_expression: int = 1
    cross_max_runs: int | None = None
    progress: bool = True


SOURCE = "source"  # the re-detected source frame; copying it is the copy_first_frame row
TRUTH = "truth"
NOISE_FLOOR = "noise_floor"  # the true frame re-encoded as JPEG
COPY = "copy_first_frame"
BOOTSTRAP_RESAMPLES = 1000  # for the 95% interval of an amplitude ratio


def _values(records: list[dict], path: Sequence[str]) -> np.ndarray:
    out = []
    for record in records:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        out.append(np.nan if value is None else float(value))
    return np.asarray(out, dtype=np.float64)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def amplitude_summary(
    generated: np.ndarray, truth: np.ndarray, reference: np.ndarray, min_change: float
) -> dict[str, Any]:
    """Amplitude of generated changes against true ones (pairs with both finite): ratio
    (amplitude_ratio), mean absolute error, mean changes. The ratio is None, with the reason,
    when the ground-truth landmarks (`reference`) hardly move in this group."""
    finite = np.isfinite(generated) & np.isfinite(truth)
    generated, truth = generated[finite], truth[finite]
    summary = {
        "ratio": amplitude_ratio(generated, truth),
        **dict(zip(("ratio_low", "ratio_high"), _ratio_interval(generated, truth), strict=True)),
        "error": _mean(np.abs(generated - truth)),
        "truth_change": _mean(truth),
        "generated_change": _mean(generated),
        "pairs": int(finite.sum()),
    }
    moved = _mean(np.abs(reference))
    if moved is None or moved < min_change:
        summary.update(ratio=None, ratio_low=None, ratio_high=None)
        summary["reason"] = f"the truth hardly moves (mean |change| < {min_change})"
    return summary


def _ratio_interval(
    generated: np.ndarray, truth: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float | None, float | None]:
    """95% bootstrap interval of amplitude_ratio over the pairs (seeded: the same pairs give
    the same interval); None for fewer than 2 pairs."""
    if len(truth) < 2:
        return None, None
    draws = np.random.default_rng(0).integers(0, len(truth), (resamples, len(truth)))
    energy = (truth[draws] ** 2).sum(1)
    slopes = (generated[draws] * truth[draws]).sum(1)[energy > 0] / energy[energy > 0]
    if not len(slopes):
        return None, None
    low, high = np.percentile(slopes, [2.5, 97.5])
    return float(low), float(high)


def _grouped(records: list[dict], key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[str(record[key])].append(record)
    return dict(sorted(groups.items()))


def _amplitudes(
    records: list[dict],
    method: str,
    truth_path: Sequence[str],
    reference_path: Sequence[str],
    min_change: float,
    breakdowns: Sequence[str],
) -> dict[str, Any]:
    def summary(group: list[dict], measure: str) -> dict[str, Any]:
        return amplitude_summary(
            _values(group, ("change", method, measure)),
            _values(group, (*truth_path, measure)),
            _values(group, (*reference_path, measure)),
            min_change,
        )

    return {
        measure: {"overall": summary(records, measure)}
        | {
            f"per_{key}": {
                name: summary(group, measure) for name, group in _grouped(records, key).items()
            }
            for key in breakdowns
        }
        for measure in MEASURES
    }


def _detection(records: list[dict]) -> dict[str, dict[str, int]]:
    names = sorted({name for record in records for name in record["found"]})
    return {
        name: {
            "frames": sum(1 for r in records if name in r["found"]),
            "missed": sum(1 for r in records if r["found"].get(name) is False),
        }
        for name in names
    }


def _distance_table(records: list[dict], rows: Sequence[str]) -> dict[str, Any]:
    return {
        row: {
            group: {
                alignment: _mean(_values(records, ("distance", row, group, alignment)))
                for alignment in ("raw", "aligned")
            }
            | {"pairs": int(np.isfinite(_values(records, ("distance", row, group, "raw"))).sum())}
            for group in POINT_GROUPS
        }
        for row in rows
    }


def summarize_same_identity(
    records: list[dict], methods: Sequence[str], settings: ExpressionSettings
) -> dict[str, Any]:
    apex = [r for r in records if r["kind"] == "apex"]
    blinks = [r for r in records if r["kind"] == "blink"]
    lowered = [
        r
        for r in apex
        if (r["truth_landmarks_change"]["brow_height"] or 0.0) < -settings.lowered_brow
    ]
    amplitude = {}
    for method in methods:
        by_measure = _amplitudes(
            apex,
            method,
            ("change", TRUTH),
            ("truth_landmarks_change",),
            settings.min_change,
            ("expression", "subject"),
        )
        amplitude[method] = by_measure | {
            "lowered_brows": amplitude_summary(
                _values(lowered, ("change", method, "brow_height")),
                _values(lowered, ("change", TRUTH, "brow_height")),
                _values(lowered, ("truth_landmarks_change", "brow_height")),
                settings.min_change / 2,
            ),
            "blinks": _blink_summary(blinks, method, settings.closed_fraction),
        }

    def reading(group: list[dict], measure: str) -> float | None:
        return amplitude_ratio(
            _values(group, ("change", TRUTH, measure)),
            _values(group, ("truth_landmarks_change", measure)),
        )

    calibration = {
        measure: {
            "overall": reading(apex, measure),
            "per_expression": {
                name: reading(group, measure)
                for name, group in _grouped(apex, "expression").items()
            },
        }
        for measure in MEASURES
    }
    return {
        "pairs": len(apex),
        "blink_frames": len(blinks),
        "lowered_brow_pairs": len(lowered),
        "detection": _detection(records),
        "distances": _distance_table(apex, [*methods, COPY, NOISE_FLOOR]),
        "amplitude": amplitude,
        "detector_calibration": calibration,
    }


def _blink_summary(blinks: list[dict], method: str, closed_fraction: float) -> dict[str, Any]:
    """Eye opening at the true blinks: amplitude of the closing, and on how many of the blink
    frames where the re-detected truth closes (`visible`) the method's eyes close at least
    closed_fraction as far."""
    generated = _values(blinks, ("change", method, "eye_opening"))
    truth = _values(blinks, ("change", TRUTH, "eye_opening"))
    reference = _values(blinks, ("truth_landmarks_change", "eye_opening"))
    summary = amplitude_summary(generated, truth, reference, 0.0)
    visible = np.isfinite(generated) & np.isfinite(truth) & (truth < 0)
    summary["visible"] = int(visible.sum())
    summary["closed"] = int((generated[visible] <= closed_fraction * truth[visible]).sum())
    return summary


def summarize_cross_identity(
    records: list[dict], methods: Sequence[str], settings: ExpressionSettings
) -> dict:
    return {
        "pairs": len(records),
        "runs": len({(r["target_take"], r["driver_take"]) for r in records}),
        "detection": _detection(records),
        "distances_to_structure": _distance_table(records, [*methods, SOURCE]),
        "amplitude": {
            method: _amplitudes(
                records,
                method,
                ("structure_change",),
                ("structure_change",),
                settings.min_change,
                ("expression", "target_subject"),
            )
            for method in methods
        },
    }


def calibrated(amplitude: dict, calibration: dict, least: float = 0.1) -> dict:
    """Cross-identity amplitudes with `calibrated_ratio` beside each ratio: the ratio over
    the detector's reading of true changes (same identity, re-detected over ground-truth
    change) for that measure and expression, so that 1 means "moves as far as a true face
    would read". None where the reading is missing or below `least` (too weak to divide by)."""

    def divide(summary: dict, reading: float | None) -> dict:
        usable = summary["ratio"] is not None and reading is not None and reading >= least
        return summary | {"calibrated_ratio": summary["ratio"] / reading if usable else None}

    out = {}
    for method, measures in amplitude.items():
        out[method] = {}
        for measure, breakdown in measures.items():
            reading = calibration[measure]
            out[method][measure] = {
                key: divide(value, reading["overall"])
                if key == "overall"
                else {
                    name: divide(summary, reading["per_expression"].get(name))
                    for name, summary in value.items()
                }
                if key == "per_expression"
                else value
                for key, value in breakdown.items()
            }
    return out
