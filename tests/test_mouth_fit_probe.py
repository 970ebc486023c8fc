"""scripts/mouth_fit_probe.py on a tiny trained run."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_script

from frgan.errors import ConfigError
from frgan.models.checkpoints import load_model
from frgan.utils.checkpoint_io import find_checkpoint


def test_the_probe_fine_tunes_at_each_weight_and_measures_inside_the_opening(
    finished_run, tmp_path
):
    script = load_script("mouth_fit_probe")
    out = tmp_path / "probe.json"
    args = [str(finished_run), "--opening-weights", "0", "50", "--steps", "4", "--every", "2"]
    script.main([*args, "--batch", "4", "--expression", "", "--min-pixels", "4"]
                + ["--out", str(out), "--docs", str(tmp_path / "docs"), "--save", str(tmp_path / "tuned")])  # fmt: skip
    figures = json.loads(out.read_text())
    assert min(figures["pairs"].values()) >= 1 and set(figures["curves"]) == {"0", "50"}
    for curve in figures["curves"].values():
        assert [point["step"] for point in curve] == [0, 2, 4]
        for split in ("train", "test"):
            assert curve[0][f"{split}_opening_error"] > 0
            assert curve[0][f"{split}_opening_spread"] >= 0
    # both start from the same checkpoint; the weight then changes what they learn
    assert figures["curves"]["0"][0] == figures["curves"]["50"][0]
    assert figures["curves"]["0"][-1] != figures["curves"]["50"][-1]
    assert out.with_suffix(".png").stat().st_size > 0
    assert (tmp_path / "docs" / "mouth_fit_probe.png").exists()
    assert "opening weight" in (tmp_path / "docs" / "mouth_fit_probe.md").read_text()
    # each tuned generator is a run folder that loads (digest checked) like a trained one
    original = load_model(find_checkpoint(finished_run)).generator.state_dict()
    tuned = {
        weight: load_model(find_checkpoint(tmp_path / "tuned" / f"opening_{weight}"))
        for weight in ("0", "50")
    }
    for weight, model in tuned.items():
        assert (tmp_path / "tuned" / f"opening_{weight}" / ".hydra" / "config.yaml").is_file()
        assert any(
            not torch.equal(value, model.generator.state_dict()[name])
            for name, value in original.items()
        )
    state_0, state_50 = (tuned[w].generator.state_dict() for w in ("0", "50"))
    assert any(not torch.equal(state_0[name], state_50[name]) for name in state_0)


def test_replay_rehearses_pairs_drawn_from_the_whole_training_set(finished_run, tmp_path):
    script = load_script("mouth_fit_probe")
    args = [str(finished_run), "--opening-weights", "0", "--steps", "2", "--every", "2"]
    args += ["--batch", "4", "--expression", "", "--min-pixels", "4"]
    curves = {}
    for replay in ("0", "0.5"):
        out = tmp_path / f"replay_{replay}.json"
        script.main([*args, "--replay", replay, "--out", str(out)])
        figures = json.loads(out.read_text())
        assert figures["replay"] == float(replay)
        curves[replay] = figures["curves"]["0"]
    assert curves["0"][0] == curves["0.5"][0]  # the same start, other batches
    assert curves["0"][-1] != curves["0.5"][-1]
    with pytest.raises(ConfigError, match="--replay"):
        script.main.__wrapped__([str(finished_run), "--replay", "1"])


def test_the_fine_tune_continues_at_the_rate_its_run_ended_with():
    from types import SimpleNamespace

    script = load_script("mouth_fit_probe")
    run = {"lr": 4e-4, "generator_lr": None, "lr_final_fraction": 0.1}
    assert script.final_rate(SimpleNamespace(**run, lr_schedule="cosine")) == pytest.approx(4e-5)
    assert script.final_rate(SimpleNamespace(**run, lr_schedule="constant")) == 4e-4
    run["generator_lr"] = 1e-3
    assert script.final_rate(SimpleNamespace(**run, lr_schedule="cosine")) == pytest.approx(1e-4)


def test_the_probe_says_when_no_pair_opens_the_mouth(finished_run, tmp_path, capsys):
    script = load_script("mouth_fit_probe")
    with pytest.raises(SystemExit) as stopped:
        script.main(
            [str(finished_run), "--min-pixels", "100000", "--out", str(tmp_path / "p.json")]
        )
    assert stopped.value.code == 2
    assert "no train pair of happiness opens the mouth" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
    with pytest.raises(ConfigError, match="--opening-weights"):
        script.main.__wrapped__([str(finished_run), "--opening-weights", "-1"])
    with pytest.raises(ConfigError, match="--min-pixels"):
        script.main.__wrapped__([str(finished_run), "--min-pixels", "1"])
