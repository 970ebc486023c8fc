"""scripts/mouth_colours.py on a tiny trained run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_DATA, TINY_RUN, compose_config, load_script
from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory) -> Path:
    from frgan.train import train

    run = tmp_path_factory.mktemp("colours")
    quiet = ["test=false", "trainer.limit_val_batches=0", "callbacks=none", "logger=none"]
    cfg = compose_config(
        "train.yaml", [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, *quiet], run
    )
    _, objects = train(cfg)
    objects["trainer"].save_checkpoint(run / "checkpoints" / "last.ckpt")
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


def test_mouth_colours_measure_each_part_of_the_truth_and_of_the_forecast(tiny_run, tmp_path):
    colours = load_script("mouth_colours")
    results = colours.measure_run(tiny_run, "test")
    assert results and "lips" in next(iter(results.values()))
    for by_part in results.values():
        assert set(by_part) <= set(colours.PARTS)
        for cells in by_part.values():
            assert cells["frames"] >= 1
            assert 0 <= cells["truth_mean"] <= 1 and 0 <= cells["model_mean"] <= 1
            assert cells["truth_spread"] > 0 and cells["model_spread"] >= 0

    out = tmp_path / "figures.json"
    colours.main(
        [f"tiny={tiny_run}", f"again={tiny_run}", "--out", str(out), "--docs", str(tmp_path)]
    )
    assert json.loads(out.read_text())["split"] == "test"
    page = (tmp_path / "mouth_colours.md").read_text()
    assert "tiny: mean / spread" in page and "again: mean / spread" in page
    figures = json.loads((tmp_path / "mouth_colours.json").read_text())
    assert figures["figures"]["results"]["tiny"] == figures["figures"]["results"]["again"]
    with pytest.raises(SystemExit):
        colours.main([str(tiny_run)])  # no NAME=
