"""scripts/mouth_colours.py on a tiny trained run."""

from __future__ import annotations

import json

import imageio.v3 as imageio
import pytest
from conftest import load_script


def test_mouth_colours_measure_each_part_of_the_truth_and_of_the_forecast(finished_run, tmp_path):
    colours = load_script("mouth_colours")
    results = colours.measure_run(finished_run, "test")
    assert results and "lips" in next(iter(results.values()))
    for by_part in results.values():
        assert set(by_part) <= set(colours.PARTS)
        for cells in by_part.values():
            assert cells["frames"] >= 1
            assert 0 <= cells["truth_mean"] <= 1 and 0 <= cells["model_mean"] <= 1
            assert cells["truth_spread"] > 0 and cells["model_spread"] >= 0

    out = tmp_path / "bench" / "figures.json"
    colours.main(
        [
            f"tiny={finished_run}",
            f"again={finished_run}",
            "--out",
            str(out),
            "--docs",
            str(tmp_path / "docs"),  # a folder that does not exist yet
        ]
    )
    assert json.loads(out.read_text())["split"] == "test"
    page = (tmp_path / "docs" / "mouth_colours.md").read_text()
    assert "tiny: mean / spread" in page and "again: mean / spread" in page
    for folder in (tmp_path / "docs", out.parent):  # the pictures, beside the page and --out
        crops = imageio.imread(folder / "mouth_crops.png")
        assert crops.shape[1] % (3 * colours.ZOOM) == 0 and crops.shape[0] > 16
        # the tiny run is the default's generator, with the learnt mouth interior
        interior = imageio.imread(folder / "mouth_interior_tiny.png")
        assert interior.shape[0] == 16 + 16 * colours.ZOOM
    figures = json.loads((tmp_path / "docs" / "mouth_colours.json").read_text())
    assert figures["figures"]["results"]["tiny"] == figures["figures"]["results"]["again"]
    with pytest.raises(SystemExit):
        colours.main([str(finished_run)])  # no NAME=
