"""scripts/expression_table.py: evaluate runs side by side on expression fidelity, from their
metrics.json (built here by evaluate's own summary functions), best in bold, "—" for what a run
lacks, one error line for a folder without metrics.json, and a page that says how it was made."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import load_script
from test_evaluate_expression import MEASURES, record

from frgan.evaluate import BASELINE, _summarize
from frgan.evaluation.expression_report import expression_markdown
from frgan.evaluation.expression_summary import (
    ExpressionSettings,
    calibrated,
    summarize_cross_identity,
    summarize_same_identity,
)
from frgan.metrics import registry
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import PROVENANCE_FIELDS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "expression_table.py"


@pytest.fixture(scope="module")
def table():
    yield load_script("expression_table")
    del sys.modules["expression_table"]


def frame_methods(forecast_psnr: float, copy_psnr: float = 17.0) -> dict:
    """evaluate's per-method summary of two videos of 3 frames whose every frame metric is
    the given value (frame 0: nothing moves, NaN)."""

    def scores(value: float) -> dict:
        frame = torch.tensor([[float("nan"), value, value]] * 2)
        return {key: [frame] for key in registry.keys(registry.FRAME)} | {
            key: [torch.full((2,), 0.02)] for key in registry.keys(registry.CLIP)
        }

    return _summarize({BASELINE: scores(copy_psnr), "forecast": scores(forecast_psnr)}, None, {})


def cross_record(expression: str, structure: float, generated: float) -> dict:
    cell = {"raw": 1.0, "aligned": 0.5}
    return {
        "target_take": f"s1__{expression}",
        "target_subject": "s1",
        "driver_take": f"s2__{expression}",
        "driver_subject": "s2",
        "expression": expression,
        "frame": 4,
        "found": {"forecast": True, "source": True},
        "structure_change": dict.fromkeys(MEASURES, structure),
        "change": {"forecast": dict.fromkeys(MEASURES, generated)},
        "distance": {
            row: dict.fromkeys(("all", "lips", "brows"), cell) for row in ("forecast", "source")
        },
    }


def expression_payload(amplitude: float, blink: float) -> dict:
    """The expression section as frgan.evaluate assembles it: the forecast moves `amplitude`
    times the truth (sadness hardly moves: n/a) and closes its eyes `blink` times as far."""
    settings = ExpressionSettings()
    records = [
        record(expression, subject, truth, amplitude * truth)
        for expression, truth in (("surprise", 0.3), ("happiness", 0.2), ("sadness", 0.001))
        for subject in ("s1", "s2")
    ]
    records += [record("anger", s, -0.1, blink * -0.1, kind="blink") for s in ("s1", "s2")]
    same = summarize_same_identity(records, ["forecast"], settings)
    cross = [
        cross_record(expression, structure, amplitude * structure)
        for expression, structure in (("surprise", 0.3), ("happiness", 0.2), ("sadness", 0.0))
        for _ in range(2)
    ]
    summary = summarize_cross_identity(cross, ["forecast"], settings)
    summary["amplitude"] = calibrated(summary["amplitude"], same["detector_calibration"])
    return {
        "status": "computed",
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "detector": "MediaPipe Face Mesh",
        "distance_unit": "pixels of a 64 px frame",
        "methods": ["forecast"],
        "takes": 8,
        "takes_without_pairs": 0,
        "same_identity": same,
        "pairs": records,
        "cross_identity": summary | {"records": cross},
    }


def write_run(
    folder: Path, psnr: float, amplitude: float | None, blink: float = 1.0, copy: float = 17.0
) -> Path:
    """An evaluate output folder; amplitude None: evaluated with evaluation.expression=false."""
    payload = {
        "protocol": {
            "checkpoint": f"{folder.name}/checkpoints/last.ckpt",
            "test_subjects": ["s1", "s2"],
            "takes": 8,
            "videos": 8,
            "frames_per_video": 3,
            "resolution": "64x64",
        },
        "fvd": {"status": "skipped", "reason": "evaluation.fvd.enabled=false"},
        "methods": frame_methods(psnr, copy),
        "expression": {"status": "skipped", "reason": "evaluation.expression=false"}
        if amplitude is None
        else expression_payload(amplitude, blink),
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "metrics.json", payload, allow_nan=False)
    return folder


def rows_by_label(table_module, runs) -> dict[str, list[str]]:
    table, _ = table_module.comparison(runs)
    return {row[0]: row[1:] for row in table.rows}


def find(rows: dict[str, list[str]], start: str) -> list[str]:
    (match,) = [cells for label, cells in rows.items() if label.startswith(start)]
    return match


def test_rows_bold_the_best_value(table, tmp_path):
    runs = [
        table.load_run(f"sharp={write_run(tmp_path / 'a', 25.0, 0.5, blink=0.0)}"),
        table.load_run(f"lively={write_run(tmp_path / 'b', 23.0, 1.25, blink=1.0)}"),
    ]
    rows = rows_by_label(table, runs)
    assert find(rows, "PSNR moving dB ↑ (copy first frame 17.00)") == ["**25.00**", "23.00"]
    assert find(rows, "PSNR mouth gain over copy first frame dB ↑") == ["**8.00**", "6.00"]
    # the distance comes from evaluate's records (forecast 1 px raw, 0.5 aligned; copy 1, JPEG 0.25)
    lips = "lips distance to the truth, pose-aligned, pixels of a 64 px frame ↓ "
    assert find(rows, lips + "(copy first frame 1.00, noise floor (JPEG) 0.25)") == [
        "0.50",
        "0.50",
    ], "a tie: neither is bold"
    # amplitudes: closest to 1 wins, 1.25 over 0.5
    assert find(rows, "mouth opening amplitude, overall") == ["0.50x", "**1.25x**"]
    assert find(rows, "mouth opening amplitude, surprise") == ["0.50x", "**1.25x**"]
    assert find(rows, "mouth opening amplitude, sadness") == ["n/a", "n/a"]
    assert find(rows, "mouth opening amplitude, anger") == ["—", "—"], "no apex pairs of anger"
    assert find(rows, "blink frames on which the eyes close") == ["0 of 2", "**2 of 2**"]
    cross = "cross identity: mouth opening over the retargeted structure's, calibrated"
    assert find(rows, f"{cross}, driver surprise") == ["0.50x", "**1.25x**"]
    assert len(rows) == 23


def test_the_fit_time_comes_from_the_training_runs_timing_json(table, tmp_path):
    trained = tmp_path / "train_run"
    (trained / "checkpoints").mkdir(parents=True)
    write_json_atomic(
        trained / "timing.json", {"fit_s": 447.4, "seconds": {"steps": 422.1, "validation": 19.1}}
    )
    folder = write_run(tmp_path / "a", 24.0, 0.8)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["protocol"]["checkpoint"] = str(trained / "checkpoints" / "epoch_002.ckpt")
    write_json_atomic(folder / "metrics.json", metrics)
    runs = [
        table.load_run(f"timed={folder}"),
        table.load_run(f"untimed={write_run(tmp_path / 'b', 24.0, 0.8)}"),
    ]
    assert find(rows_by_label(table, runs), "training time, fit") == [
        "7 min 27 s (steps 422 s, validation 19 s)",
        "—",
    ]


def test_a_run_without_the_expression_analysis_gets_dashes(table, tmp_path):
    runs = [
        table.load_run(f"full={write_run(tmp_path / 'a', 24.0, 0.8)}"),
        table.load_run(f"frames={write_run(tmp_path / 'b', 26.0, None)}"),
        table.load_run(f"other={write_run(tmp_path / 'c', 20.0, 0.4)}"),
    ]
    rows = rows_by_label(table, runs)
    assert find(rows, "PSNR moving dB") == ["24.00", "**26.00**", "20.00"]
    assert find(rows, "mouth opening amplitude, overall") == ["**0.80x**", "—", "0.40x"]
    assert find(rows, "blink frames") == ["2 of 2", "—", "2 of 2"], "all tie: none is bold"
    assert find(rows, "lowered brows amplitude") == ["n/a", "—", "n/a"], "no brow is lowered"
    lines = [table.describe_run(run) for run in runs]
    assert "no expression analysis (evaluation.expression=false)" in lines[1]
    assert "test subjects s1, s2: 8 videos (8 test takes), 3 frames each, 64x64 px" in lines[0]


def test_baselines_that_differ_between_runs_go_into_the_cells(table, tmp_path):
    runs = [
        table.load_run(f"a={write_run(tmp_path / 'a', 24.0, 0.8, copy=17.0)}"),
        table.load_run(f"b={write_run(tmp_path / 'b', 22.0, 0.8, copy=15.0)}"),
    ]
    rows = rows_by_label(table, runs)
    assert rows["PSNR moving dB ↑"] == [
        "**24.00** (copy first frame 17.00)",
        "22.00 (copy first frame 15.00)",
    ]


def test_the_report_shows_an_undefined_calibrated_ratio_as_na():
    # the report's cross-identity table once showed "a" for it (the tail of "n/a/n/a")
    lines = expression_markdown(expression_payload(0.5, 1.0))
    sadness = [line for line in lines if line.startswith("| sadness |")]
    assert sadness and all(" | a | " not in line for line in sadness)
    assert "| n/a | 2 |" in sadness[1]


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(SCRIPT.relative_to(REPO)), *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_folder_without_metrics_json_is_one_error_line(tmp_path):
    good = write_run(tmp_path / "good", 24.0, 0.8)
    (tmp_path / "empty").mkdir()
    done = run_script(f"good={good}", f"empty={tmp_path / 'empty'}")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: empty: no metrics.json in {tmp_path / 'empty'}; give the output folder of "
        "`python -m frgan.evaluate ckpt=<run> evaluation=no_fvd out=<folder>`"
    )
    (tmp_path / "empty" / "metrics.json").write_text("{not json")
    done = run_script(f"broken={tmp_path / 'empty'}")
    assert done.returncode == 2 and done.stderr.startswith("error: broken: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_page_states_command_commit_machine_and_date(tmp_path):
    a, b = write_run(tmp_path / "a", 24.0, 0.5), write_run(tmp_path / "b", 23.0, 0.9)
    note = "The default then had no expression levers."
    done = run_script(
        f"default={a}", f"expression={b}", "--docs", str(tmp_path / "pages"), "--note", note
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(
        r"^PSNR moving dB ↑ \(copy first frame 17\.00\) +\*\*24\.00\*\*", done.stdout, re.M
    )
    page = (tmp_path / "pages" / "comparison.md").read_text()
    header = page.split("\n|", 1)[0]
    for field in PROVENANCE_FIELDS:
        assert re.search(rf"^- {field}: \S", header, re.MULTILINE), field
    assert f"- command: `python scripts/expression_table.py default={a} expression={b}" in page
    assert "| figure | default | expression |" in page
    assert page.index(note) < page.index("Runs:"), "the note comes before the runs"
    assert "| mouth opening amplitude, overall | 0.50x | **0.90x** |" in page
    assert f"- **default**: `{a}`, checkpoint `a/checkpoints/last.ckpt` (forecast only)" in page
    figures = json.loads((tmp_path / "pages" / "comparison.json").read_text())
    assert set(PROVENANCE_FIELDS) <= set(figures["provenance"])
    mouth = figures["figures"]["rows"]["mouth_opening"]
    assert mouth["better"] == "closest to 1"
    assert mouth["values"] == {"default": pytest.approx(0.5), "expression": pytest.approx(0.9)}
    assert figures["figures"]["runs"]["default"]["method"] == "forecast"


def test_each_run_line_names_the_training_command_without_cosmetic_overrides(table, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(
        "- experiment=expression\n- hydra.run.dir=/x\n- logger=csv\n- model.head_blocks=2\n"
    )
    checkpoint = run / "checkpoints" / "epoch_002.ckpt"
    assert table.training_command(checkpoint) == (
        "python -m frgan.train experiment=expression model.head_blocks=2"
    )
    assert table.training_command(tmp_path / "elsewhere.ckpt") is None
