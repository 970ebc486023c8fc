"""scripts/spline_warp.py: the landmark warp's spline alone on prepared takes."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


def test_the_page_counts_every_pair_for_each_spline(tiny_data_dir, tmp_path, capsys):
    script = load_script("spline_warp")
    shard_dir = tiny_data_dir / "synthetic" / "shards" / "64px"
    script.main(["--shard-dir", str(shard_dir), "--splits", "test", "val", "--docs", str(tmp_path)])
    figures = json.loads((tmp_path / "spline_warp.json").read_text())["figures"]
    assert figures["pairs"] > 0
    assert set(figures["splines"]) == set(script.splines([0.25]))
    for results in figures["splines"].values():
        rates = results["folds"]
        assert rates["below 0.0"]["other"] >= rates["below -0.1"]["other"] >= 0
        assert results["psnr"]["face_rest"]["other"] > 15  # the moved source is like the truth
    assert "lids held at 0.4 (the default)" in (tmp_path / "spline_warp.md").read_text()
    with pytest.raises(SystemExit) as stop:
        script.main(["--shard-dir", str(shard_dir), "--splits", "nosuch"])
    assert stop.value.code == 2 and "no shards of the splits nosuch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        script.main(["--shard-dir", str(shard_dir), "--lid-gaps", "-1"])
    assert stop.value.code == 2 and "a number in (0, 1]" in capsys.readouterr().err
