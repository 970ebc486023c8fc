"""frgan.train with model=refine, and experiment=two_stage, on the tiny synthetic set."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, compose_config
from pytorch_lightning import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException
from test_train import (
    REPO,
    RecordRestoredState,
    _assert_same_state,
    _cli,
    kill_mid_run_then_resume,
)

import frgan.train as train_module
from frgan.models import ForecastGAN
from frgan.train import train
from frgan.two_stage import _pipeline_folder, run_two_stage
from frgan.utils.instantiate import instantiate_callbacks

# 4-frame clips of 2: the tiny takes have 5..7 frames
TINY_CLIPS = ["data.clip_length=4", "data.batch_size=2"]


@pytest.fixture(scope="module")
def forecast_ckpt(tiny_data_dir, tmp_path_factory) -> Path:
    """The best checkpoint of a tiny forecast run."""
    run = tmp_path_factory.mktemp("forecast") / "run"
    cfg = compose_config(
        "train.yaml",
        [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, "test=false"],
        run_dir=run,
    )
    _, objects = train(cfg)
    return Path(objects["trainer"].checkpoint_callback.best_model_path)


def _refine(forecast_ckpt: Path, *overrides: str) -> list[str]:
    return ["model=refine", f"model.forecast_ckpt={forecast_ckpt}", *TINY_CLIPS, *overrides]


def _with_callback(monkeypatch, callback: Callback) -> None:
    monkeypatch.setattr(
        train_module, "instantiate_callbacks", lambda cfg: [*instantiate_callbacks(cfg), callback]
    )


def test_refine_fits_tests_and_resumes(train_config, forecast_ckpt, tmp_path, monkeypatch):
    first = train_config(*_refine(forecast_ckpt))
    assert first.data.stage == "refine", "choosing the model chooses the data stage"
    metrics, objects = train(first)
    for name in ("val/temporal_error", "val/forecast_temporal_error", "test/flicker"):
        assert name in metrics, f"{name} missing from {sorted(metrics)}"
    for name in ("psnr", "psnr_moving", "ssim", "ssim_moving", "temporal_error", "flicker"):
        assert f"test/copy_{name}" in metrics and f"test/forecast_{name}" in metrics
    run = tmp_path / "run"
    assert (run / "csv" / "metrics.csv").is_file()
    assert sorted(p.suffix for p in (run / "samples").glob("epoch_000.*")) == [
        ".gif",
        ".mp4",
        ".png",
    ]
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)

    resumed = train_config(
        *_refine(forecast_ckpt, "test=false", "trainer.max_epochs=2", "ckpt_path=last")
    )
    recorder = RecordRestoredState()
    _with_callback(monkeypatch, recorder)
    _, objects = train(resumed)
    assert recorder.global_step == saved["global_step"] > 0
    for restored, state in zip(recorder.optimizer_states, saved["optimizer_states"], strict=True):
        _assert_same_state(restored, state)
    assert objects["trainer"].current_epoch == 2


def test_refine_under_ddp_sim(train_config, forecast_ckpt):
    cfg = train_config(
        *_refine(forecast_ckpt),
        "trainer=ddp_sim",
        "test=false",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    )
    metrics, objects = train(cfg)
    assert objects["trainer"].world_size == 2
    assert "val/temporal_error" in metrics


@pytest.mark.parametrize(
    ("forecast", "expected"),
    [("other_model", "holds RefineGAN, not a ForecastGAN"), ("other_size", "trained at 96 px")],
)
def test_unusable_forecaster_is_refused(train_config, forecast_ckpt, tmp_path, forecast, expected):
    if forecast == "other_model":
        refine = train_config(*_refine(forecast_ckpt, "test=false"))
        _, objects = train(refine)
        path = objects["trainer"].checkpoint_callback.best_model_path
        overrides = _refine(path)
    else:
        model = ForecastGAN(preset="tiny", image_size=96)
        path = tmp_path / "forecast_96px.ckpt"
        torch.save({"frgan_model": model.identity(), "state_dict": model.state_dict()}, path)
        overrides = _refine(path)
    with pytest.raises(Exception, match=f"model.forecast_ckpt.*{expected}"):
        train(train_config(*overrides))


def test_missing_forecaster_is_one_line_and_exit_2(tiny_data_dir, tmp_path):
    missing = tmp_path / "nowhere.ckpt"
    result = subprocess.run(
        _cli(tmp_path / "run", tiny_data_dir, *_refine(missing)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model.forecast_ckpt" in errors[0], result.stderr[-2000:]


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)]
)
def test_killed_refine_run_resumes(tiny_data_dir, forecast_ckpt, tmp_path, sig):
    run_dir = tmp_path / "run"
    often = ["test=false", "callbacks.periodic_checkpoint.every_n_train_steps=2"]
    status, saved, finish = kill_mid_run_then_resume(
        run_dir, tiny_data_dir, sig, _refine(forecast_ckpt, *often), timeout=300
    )
    assert status == (128 + signal.SIGTERM if sig == signal.SIGTERM else -sig)
    assert saved["global_step"] > 0
    assert finish.returncode == 0, finish.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] > saved["global_step"]


class StopRefine(Callback):
    """SIGTERM (as Lightning raises it) after the first refine batch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if type(pl_module).__name__ == "RefineGAN":
            raise SIGTERMException()


class RecordStages(RecordRestoredState):
    def __init__(self):
        self.trained: list[tuple[str, int]] = []

    def on_train_start(self, trainer, pl_module):
        self.trained.append((type(pl_module).__name__, trainer.global_step))


def test_two_stage_trains_both_and_continues_after_a_kill(tiny_data_dir, tmp_path, monkeypatch):
    log_dir = tmp_path / "outputs"
    overrides = [
        f"paths.data_dir={tiny_data_dir}",
        f"paths.log_dir={log_dir}",
        *TINY_DATA,
        *TINY_RUN,
        "data.clip_length=4",
    ]

    def pipeline_config(name: str):
        run = log_dir / "two_stage" / "runs" / name
        return compose_config("train.yaml", ["experiment=two_stage", *overrides], run_dir=run)

    _with_callback(monkeypatch, StopRefine())
    with pytest.raises(SIGTERMException):
        run_two_stage(pipeline_config("first"), ["experiment=two_stage", *overrides], train)
    first = log_dir / "two_stage" / "runs" / "first"
    assert json.loads((first / "forecast" / "done.json").read_text())["metrics"]
    assert (first / "refine" / "checkpoints" / "last.ckpt").is_file()
    # stage folders are run folders: frgan.generate reads the data config they trained on
    assert (first / "forecast" / ".hydra" / "config.yaml").is_file()
    assert not (first / "refine" / "done.json").exists()
    saved = torch.load(first / "refine" / "checkpoints" / "last.ckpt", weights_only=True)

    # the same command again, in a new timestamped folder: the pipeline continues
    recorder = RecordStages()
    _with_callback(monkeypatch, recorder)
    metrics, _ = run_two_stage(
        pipeline_config("second"), ["experiment=two_stage", *overrides], train
    )
    assert recorder.trained == [("RefineGAN", saved["global_step"])], "forecast not retrained"
    refine_done = json.loads((first / "refine" / "done.json").read_text())
    forecast_done = json.loads((first / "forecast" / "done.json").read_text())
    forecaster = torch.load(refine_done["best_checkpoint"], weights_only=True)
    assert (
        forecaster["hyper_parameters"]["forecaster"]["source"] == forecast_done["best_checkpoint"]
    )
    assert "refine/test/temporal_error" in metrics and "forecast/test/psnr" in metrics
    summary = json.loads((first / "summary.json").read_text())
    assert set(summary["temporal error"]) == {"copy first frame", "forecast", "refined"}
    assert json.loads((first / "pipeline.json").read_text())["finished"]

    # finished: the same command starts a new pipeline in its own folder
    third = log_dir / "two_stage" / "runs" / "third"
    assert _pipeline_folder(third, ["experiment=two_stage", *overrides][1:], True) == third


def test_summary_leaves_out_what_the_pipeline_never_logged(tmp_path):
    """A pipeline finished before a metric existed: no NaN in summary.json (not JSON), n/a in
    the table, and a row no stage logged is not shown at all."""
    from frgan.two_stage import write_summary

    metrics = {
        f"refine/test/{prefix}psnr": value
        for prefix, value in (("copy_", 21.0), ("forecast_", 24.0), ("", 24.5))
    }
    metrics["refine/test/rim_error"] = 0.03  # the refined clip's only
    table = write_summary(tmp_path, metrics)
    assert list(table) == ["PSNR (dB)", "rim error (halos)"]
    assert table["rim error (halos)"] == {
        "copy first frame": None,
        "forecast": None,
        "refined": 0.03,
    }

    def refuse(constant):
        raise AssertionError(f"summary.json holds {constant}")

    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text, parse_constant=refuse) == table
    assert "| rim error (halos) | n/a | n/a | 0.03 |" in (tmp_path / "summary.md").read_text()
