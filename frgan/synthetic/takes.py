"""Temporal dynamics of a take: neutral -> onset -> apex (-> partly back), blinks, head motion."""

from dataclasses import dataclass

import numpy as np

from frgan.synthetic.expressions import ACTION_UNITS, BLINK, expression_vector
from frgan.synthetic.head import smoothstep

POSE_NAMES = (
    "yaw",
    "pitch",
    "roll",
    "tx",
    "ty",
    "scale",
)  # radians, radians, radians, px, px, px/unit


@dataclass(frozen=True)
class TakeDynamics:
    action_units: np.ndarray  # float [T, len(ACTION_UNITS)] weights per frame (blinks included)
    curve: np.ndarray  # float [T] expression activation in [0, 1]
    intensity: float  # apex intensity of this take
    pose: np.ndarray  # float [T, 6], see POSE_NAMES
    gaze: np.ndarray  # float [T, 2] iris offset on the eyeball disc
    apex_frame: int  # a frame at full activation without a blink
    returns: bool  # whether the take relaxes back towards neutral


def expression_curve(rng: np.random.Generator, n_frames: int):
    """Activation over time: a neutral hold, a smooth onset, an apex, maybe an offset."""
    t = np.arange(n_frames, dtype=np.float64)
    start = rng.integers(2, max(3, n_frames // 5))
    onset = max(3, int(rng.uniform(0.2, 0.35) * n_frames))
    curve = smoothstep(start, start + onset, t)
    returns = bool(rng.random() < 0.35) and n_frames - (start + onset) > 8
    if returns:
        apex_end = start + onset + rng.integers(3, max(4, (n_frames - start - onset) // 2))
        floor = rng.uniform(0.2, 0.6)
        curve = curve * (1 - (1 - floor) * smoothstep(apex_end, n_frames + 2, t))
    return curve, returns


def blink_track(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Eyelid closure in [0, 1]: quick blinks (close ~2 frames, reopen ~3) at random times."""
    track = np.zeros(n_frames)
    count = rng.poisson(n_frames / 30)
    for onset in rng.integers(0, n_frames, count):
        shape = np.array([0.5, 1.0, 0.7, 0.35, 0.1]) * rng.uniform(0.85, 1.0)
        frames = np.arange(onset, min(onset + len(shape), n_frames))
        track[frames] = np.maximum(track[frames], shape[: len(frames)])
    return track


def smooth_wander(rng: np.random.Generator, n_frames: int, amplitude: float) -> np.ndarray:
    """A slow random drift: two sinusoids with random periods (20-70 frames) and phases."""
    t = np.arange(n_frames)
    periods = rng.uniform(20, 70, 2)
    phases = rng.uniform(0, 2 * np.pi, 2)
    weights = rng.uniform(0.3, 1.0, 2)
    wave = sum(
        w * np.sin(2 * np.pi * t / p + ph)
        for w, p, ph in zip(weights, periods, phases, strict=True)
    )
    return amplitude * (wave / weights.sum() + rng.uniform(-0.5, 0.5))


def sample_take_dynamics(
    rng: np.random.Generator, expression: str, n_frames: int, image_size: int
) -> TakeDynamics:
    curve, returns = expression_curve(rng, n_frames)
    intensity = float(rng.uniform(0.7, 1.0))
    apex_weights = (
        expression_vector(expression) * rng.uniform(0.85, 1.15, len(ACTION_UNITS)) * intensity
    )
    action_units = curve[:, None] * apex_weights[None]
    blinks = blink_track(rng, n_frames)
    action_units[:, BLINK] = np.clip(action_units[:, BLINK] + blinks, 0, 1)

    scale = 0.3 * image_size * rng.uniform(0.95, 1.05)
    pose = np.stack(
        [
            smooth_wander(rng, n_frames, 0.09),
            smooth_wander(rng, n_frames, 0.06),
            smooth_wander(rng, n_frames, 0.05),
            smooth_wander(rng, n_frames, 0.025 * image_size),
            smooth_wander(rng, n_frames, 0.02 * image_size),
            np.full(n_frames, scale),
        ],
        axis=1,
    )
    # Gaze: a few fixations with jumps between them.
    fixations = rng.uniform(-0.15, 0.15, (rng.integers(1, 4), 2))
    gaze = fixations[
        np.minimum(np.arange(n_frames) * len(fixations) // n_frames, len(fixations) - 1)
    ]

    peak = curve.max()
    candidates = np.nonzero((curve >= peak - 1e-3) & (blinks < 0.05))[0]
    if len(candidates) == 0:
        candidates = np.nonzero(curve >= peak - 1e-3)[0]
    apex_frame = int(candidates[len(candidates) // 2])
    return TakeDynamics(action_units, curve, intensity, pose, gaze, apex_frame, returns)
