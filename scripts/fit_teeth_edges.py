"""Fit the teeth edges of the structure map (frgan/render/parts.py TEETH_EDGES) to where the
synthetic renderer shows teeth, and score the drawn teeth against the rendered ones.

Takes are rendered with their pixel labels. Every pixel of the landmarks' mouth cavity is
either teeth or dark cavity in the structure map, by which side of the two edges it lies:
above the upper edge or below the lower one is teeth. Each edge's distance below the nose base
(eye distances, down the face) is a line in the chin's distance below the nose base; the two
lines are chosen on a grid (coordinate descent) to mislabel the fewest cavity pixels. Scores
per expression, for the first rule (AT_REST), the coefficients in parts.py and the fitted ones:
the share of cavity pixels drawn right (accuracy), of the pixels the renderer labels teeth the
share drawn as teeth (recall, in the JSON), and of those drawn as teeth the share that are
(precision).

    python scripts/fit_teeth_edges.py                      # 8 subjects, ~30 s
    python scripts/fit_teeth_edges.py --subjects 4 --docs  # and a page in docs/bench/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from frgan.render import parts
from frgan.synthetic.appearance import LABEL
from frgan.synthetic.expressions import EXPRESSIONS
from frgan.synthetic.take_video import render_take
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

COVERED = 0.5  # a pixel belongs to the cavity when the cavity covers more than this of it
SLOPES = np.linspace(-0.2, 1.2, 57)
INTERCEPTS = np.linspace(-1.5, 1.0, 251)
# the first rule, as lines: upper teeth down to where the mean face's lips meet, measured from
# the nose base; lower teeth up to there, measured from the chin (0.780 above it)
AT_REST = {"upper": (0.337, 0.0), "lower": (-0.780, 1.0)}


def cavity_pixels(take, every: int = 2) -> dict[str, np.ndarray]:
    """The cavity pixels of a rendered take's frames: chin and below_nose (eye distances down
    the face from the nose base) and teeth (the renderer's label)."""
    chin, below_nose, teeth = [], [], []
    height, width = take.labels.shape[1:]
    for frame in range(0, len(take.labels), every):
        xy = take.landmarks[frame, :, :2].astype(np.float64)
        cavity = parts.part_coverage(xy, height, width)["cavity"] > COVERED
        rows, cols = np.nonzero(cavity)
        below, chin_below = parts.below_nose(xy, np.stack([cols + 0.5, rows + 0.5], axis=-1))
        below_nose.append(below)
        chin.append(np.full(len(rows), chin_below))
        teeth.append(take.labels[frame][rows, cols] == LABEL["teeth"])
    return {
        "chin": np.concatenate(chin),
        "below_nose": np.concatenate(below_nose),
        "teeth": np.concatenate(teeth),
    }


def drawn_teeth(pixels: dict[str, np.ndarray], edges: dict[str, tuple]) -> np.ndarray:
    """Which cavity pixels the structure map draws as teeth with these edges."""
    return parts.is_teeth(pixels["below_nose"], pixels["chin"], edges)


def fit_edges(pixels: dict[str, np.ndarray], start: dict[str, tuple], rounds: int = 3) -> dict:
    """The edges that mislabel the fewest cavity pixels, one edge at a time on the grid."""
    edges = dict(start)
    for _ in range(rounds):
        for name in ("upper", "lower"):
            candidates = [(a, b) for b in SLOPES for a in INTERCEPTS]
            errors = [
                np.mean(drawn_teeth(pixels, {**edges, name: line}) != pixels["teeth"])
                for line in candidates
            ]
            edges[name] = tuple(float(round(v, 3)) for v in candidates[int(np.argmin(errors))])
    return edges


def scores(pixels: dict[str, np.ndarray], edges: dict[str, tuple]) -> dict:
    drawn, teeth = drawn_teeth(pixels, edges), pixels["teeth"]
    return {
        "cavity_pixels": len(teeth),
        "teeth_share": float(teeth.mean()),
        "accuracy": float((drawn == teeth).mean()),
        "recall": float((drawn & teeth).sum() / max(teeth.sum(), 1)),
        "precision": float((drawn & teeth).sum() / max(drawn.sum(), 1)),
    }


def measure(subjects: int, image_size: int, seed: int = 0) -> dict:
    per_expression = {}
    for expression in EXPRESSIONS:
        found = [
            cavity_pixels(
                render_take(
                    seed, subject, expression, subject % 2, image_size=image_size, with_labels=True
                )
            )
            for subject in range(1, subjects + 1)
        ]
        per_expression[expression] = {k: np.concatenate([f[k] for f in found]) for k in found[0]}
    everything = {
        k: np.concatenate([p[k] for p in per_expression.values()])
        for k in ("chin", "below_nose", "teeth")
    }
    in_code = dict(parts.TEETH_EDGES)
    fitted = fit_edges(everything, in_code)
    rows = {"all": everything, **per_expression}
    return {
        "subjects": subjects,
        "image_size": image_size,
        "in_code": {k: list(v) for k, v in in_code.items()},
        "fitted": {k: list(v) for k, v in fitted.items()},
        "scores_at_rest": {name: scores(p, AT_REST) for name, p in rows.items()},
        "scores_in_code": {name: scores(p, in_code) for name, p in rows.items()},
        "scores_fitted": {name: scores(p, fitted) for name, p in rows.items()},
    }


def tables(result: dict) -> list[Table]:
    lines = Table(
        ["edge", "in parts.py", "fitted"],
        [
            [
                name,
                " + ".join(f"{c:.3f}" for c in result["in_code"][name]),
                " + ".join(f"{c:.3f}" for c in result["fitted"][name]),
            ]
            for name in ("upper", "lower")
        ],
        caption="Edge below the nose base = intercept + slope × chin below the nose base "
        "(eye distances): intercept + slope.",
    )
    rules = {"at rest": "scores_at_rest", "parts.py": "scores_in_code", "fitted": "scores_fitted"}
    rows = []
    for name, first in result["scores_in_code"].items():
        rows.append(
            [name, first["cavity_pixels"], f"{first['teeth_share']:.2f}"]
            + [
                f"{result[key][name][k]:.2f}"
                for key in rules.values()
                for k in ("accuracy", "precision")
            ]
        )
    headers = ["expression", "cavity px", "teeth share"]
    headers += [f"{k} ({rule})" for rule in rules for k in ("accuracy", "precision")]
    agreement = Table(
        headers,
        rows,
        caption="Cavity pixels drawn as teeth or as cavity against the renderer's labels, every "
        "other frame of each take: accuracy (the share drawn right) and precision (of those drawn "
        "as teeth, the share that are). At rest: the first rule, the lips' meeting line of the "
        "mean face at rest.",
    )
    return [lines, agreement]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/fit_teeth_edges.json"))
    add_docs_option(parser)
    args = parser.parse_args(argv)
    result = measure(args.subjects, args.image_size)
    for table in tables(result):
        print(table.caption)
        print(text_table(table.headers, table.rows), end="\n\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if args.docs:
        page = write_results_page(
            args.docs, "fit_teeth_edges", "Teeth edges of the structure map", tables(result), result
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main(sys.argv[1:])
