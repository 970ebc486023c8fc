"""Temporal smoothing of a take's detected landmarks (data.prepare.landmark_smoothing).

A detector places each frame's points on their own, so they jitter from frame to frame where
the face does not move, and the structure map flickers with them. Over a whole take:
- none: the points as detected.
- savgol: a Savitzky-Golay filter (a least-squares polynomial of degree `polyorder` over a
  centred window of `window` frames): zero lag, keeps the speed of real motion better than a
  moving average; the first and last half-windows are fitted by the end windows' polynomials.
  Takes shorter than the window use the longest odd window they hold (none when that is not
  longer than polyorder).
- one_euro: the One Euro filter (Casiez et al., CHI 2012), causal: a low-pass whose cutoff
  rises with the speed of each coordinate, `min_cutoff` + `beta` * |speed|, in cycles per
  frame and pixels per frame; it lags a little behind fast motion.
Pure functions of landmarks [T, P, 3] (image pixels), float32 out; every frame must have a face
(the preparation smooths after dropping frames without one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

SMOOTHING_METHODS = ("none", "savgol", "one_euro")


def savgol(landmarks: np.ndarray, *, window: int = 7, polyorder: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing along time of landmarks [T, P, D]."""
    points = np.asarray(landmarks, dtype=np.float64)
    frames = len(points)
    window = min(window, frames if frames % 2 else frames - 1)
    if window <= polyorder:
        return points.astype(np.float32)
    half = window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    fit = np.linalg.pinv(np.vander(offsets, polyorder + 1, increasing=True))  # [p+1, window]
    flat = points.reshape(frames, -1)
    out = np.empty_like(flat)
    centre_weights = fit[0]
    windows = np.lib.stride_tricks.sliding_window_view(flat, window, axis=0)  # [T-w+1, C, w]
    out[half : frames - half] = windows @ centre_weights
    for edge, ends in ((slice(0, window), np.arange(half)), (slice(-window, None), None)):
        coefficients = fit @ flat[edge]  # [p+1, C]
        at = ends if ends is not None else np.arange(half + 1, window)
        rows = np.vander(at - half, polyorder + 1, increasing=True) @ coefficients
        if ends is not None:
            out[:half] = rows
        else:
            out[frames - half :] = rows
    return out.reshape(points.shape).astype(np.float32)


def one_euro(
    landmarks: np.ndarray,
    *,
    min_cutoff: float = 0.05,
    beta: float = 0.05,
    derivative_cutoff: float = 0.2,
) -> np.ndarray:
    """One Euro filtering along time of landmarks [T, P, D] (cutoffs in cycles per frame)."""
    points = np.asarray(landmarks, dtype=np.float64)
    out = np.empty_like(points)
    out[0] = filtered = points[0]
    speed = np.zeros_like(points[0])
    for index in range(1, len(points)):
        raw_speed = points[index] - filtered
        speed = speed + _alpha(derivative_cutoff) * (raw_speed - speed)
        alpha = _alpha(min_cutoff + beta * np.abs(speed))
        filtered = filtered + alpha * (points[index] - filtered)
        out[index] = filtered
    return out.astype(np.float32)


def _alpha(cutoff):
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau)


def no_smoothing(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, dtype=np.float32)


def smoother(method: str, **options) -> Callable[[np.ndarray], np.ndarray]:
    """The smoothing function `method` with its options; ValueError for a bad name or option."""
    functions = {"none": no_smoothing, "savgol": savgol, "one_euro": one_euro}
    if method not in functions:
        raise ValueError(
            f"data.prepare.landmark_smoothing must be one of {', '.join(SMOOTHING_METHODS)}, "
            f"got {method!r}"
        )
    function = functions[method]
    known = set(function.__kwdefaults__ or {})
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"data.prepare.landmark_smoothing_options {unknown} do not apply to {method}; "
            f"it takes {sorted(known) or 'none'}"
        )
    if method == "savgol":
        window, polyorder = options.get("window", 7), options.get("polyorder", 2)
        if window < 1 or window % 2 == 0 or not 0 <= polyorder < window:
            raise ValueError(
                "data.prepare.landmark_smoothing_options: savgol needs an odd window >= 1 and "
                f"0 <= polyorder < window, got window={window}, polyorder={polyorder}"
            )
    if method == "one_euro" and any(options.get(k, 1) < 0 for k in known):
        raise ValueError(
            f"data.prepare.landmark_smoothing_options for one_euro must be >= 0, got {options}"
        )
    return partial(function, **options)
