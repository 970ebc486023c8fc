"""frgan.metrics.registry: a metric declared once reaches every list that shows metrics, the
face-region metrics see errors only in their region, and clips are scored frame by frame."""

from __future__ import annotations

import math

import pytest
import torch

from frgan import metrics
from frgan.metrics import registry
from frgan.metrics.regions import region_masks
from frgan.render.face68 import mean_face68

SIZE = 64


def _face(batch: int = 2) -> torch.Tensor:
    return torch.from_numpy(mean_face68(SIZE, SIZE)[:, :2]).float()[None].repeat(batch, 1, 1)


def _frames(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _dummy(**options) -> registry.Metric:
    """A frame metric the code has never heard of: the mean prediction."""
    return registry.Metric(
        "dummy_mean",
        "dummy mean",
        lambda frames: frames.pred.flatten(1).mean(1),
        unit="u",
        fmt="{:.3f}",
        gain=True,
        sweep=("test", "val_gain"),
        **options,
    )


@pytest.fixture
def with_dummy(monkeypatch):
    metric = _dummy()
    monkeypatch.setattr(registry, "METRICS", (*registry.METRICS, metric))
    return metric


def test_a_new_metric_needs_only_its_registry_entry(with_dummy, tmp_path):
    """Registered once, the metric is scored, logged with its copy baseline and gain, and shown
    by frgan.evaluate's report, the two-stage summary and the sweep summary."""
    from frgan.evaluation_report import markdown
    from frgan.models import ForecastGAN
    from frgan.sweeps import summary_tables
    from frgan.two_stage import write_summary

    x0, xt = _frames(0), _frames(1)
    assert "dummy_mean" in metrics.frame_quality(xt, xt, x0)
    clip = torch.stack([x0, xt], dim=1)
    assert registry.score_clip(clip, clip, x0)["dummy_mean"].shape == (2, 2)

    # logged in validation and test beside copying, with its gain
    model = ForecastGAN(preset="tiny", image_size=16)
    assert {"dummy_mean", "copy_dummy_mean"} <= set(model.quality["val"])
    inputs = {k: _frames(i)[:, :, :16, :16] for i, k in enumerate(("x0", "s0", "xt", "st"))}
    scores = model.score_batch(inputs)
    assert "dummy_mean" in scores[""] and "dummy_mean" in scores["copy_"]
    logged = {}
    model.log_dict = lambda values, **_: logged.update(values)
    model._update_quality("test", {**inputs})
    model._log_quality("test")
    gain = logged["test/dummy_mean_gain"]
    assert gain == logged["test/dummy_mean"] - logged["test/copy_dummy_mean"]

    # frgan.evaluate's metrics.json: averaged, and per frame
    from frgan.evaluate import _summarize

    summary = _summarize(
        {"forecast": {k: [v] for k, v in registry.score_clip(clip, clip, x0).items()}}, None, {}
    )
    assert summary["forecast"]["dummy_mean"] is not None
    assert len(summary["forecast"]["per_frame"]["dummy_mean"]) == 2

    # frgan.evaluate's report
    result = {"label": "forecast only", "dummy_mean": 0.25}
    payload = {
        "protocol": {
            "checkpoint": "c.ckpt",
            "model": {"class": "ForecastGAN"},
            "dataset": "synthetic",
            "test_subjects": ["s002"],
            "videos": 1,
            "takes": 1,
            "frames_per_video": 2,
            "resolution": "16x16",
            "clip_selection": "first frames",
            "metric_averaging": "mean",
            "moving_threshold": 0.1,
            "seeds": {"evaluate": 1},
        },
        "fvd": {"status": "skipped", "reason": "test"},
        "methods": {"forecast": result},
    }
    report = markdown(payload, with_samples=False)
    assert "dummy mean u ↑" in report and "| 0.250 |" in report

    # the two-stage summary
    table = write_summary(tmp_path, {"refine/test/dummy_mean": 2.0})
    assert table == {"dummy mean (u)": {"copy first frame": None, "forecast": None, "refined": 2.0}}

    # the sweep summary
    assert registry.sweep_columns()[-1] == "test/dummy_mean"
    assert "val/dummy_mean_gain" in registry.sweep_columns()
    record = {
        "folder": "0",
        "overrides": ["model.lr=1"],
        "status": "ok",
        "optimized_metric": "val/psnr_moving",
        "value": 1.0,
        "metrics": {"val/psnr_moving": 1.0, "test/dummy_mean": 0.5, "val/dummy_mean_gain": 0.1},
    }
    markdown_table, _ = summary_tables([record])
    header = markdown_table.splitlines()[0]
    assert "val/dummy_mean_gain" in header and "test/dummy_mean" in header


def test_metric_entries_are_checked_and_keys_unique():
    with pytest.raises(ValueError, match="level"):
        _dummy(level="video")
    assert len(set(registry.keys())) == len(registry.METRICS)
    assert registry.get("rim_error").header == "rim error (halos) ↓"
    assert registry.get("psnr_moving").row_label == "PSNR moving (dB)"
    lower = registry.get("mae_mouth")
    assert lower.gain_over(torch.tensor(0.1), torch.tensor(0.3)) == pytest.approx(0.2)


def test_region_metrics_see_an_error_only_in_its_region():
    """A prediction wrong only in the mouth lowers the mouth's PSNR and raises its error; the
    eyes and the rest of the face score exactly as before."""
    landmarks = _face()
    x0, xt = _frames(0), _frames(1)  # every pixel moves
    mouth = region_masks(landmarks, SIZE)["mouth"]
    close = xt + 0.01 * _frames(2)
    wrong_mouth = close + 0.5 * mouth
    good = metrics.frame_quality(close, xt, x0, landmarks=landmarks)
    bad = metrics.frame_quality(wrong_mouth, xt, x0, landmarks=landmarks)
    assert (bad["psnr_mouth"] < good["psnr_mouth"] - 10).all()
    assert (bad["mae_mouth"] > good["mae_mouth"] + 0.3).all()
    for region in ("eyes_brows", "face_rest"):
        for name in (f"psnr_{region}", f"mae_{region}"):
            assert torch.isfinite(good[name]).all()
            torch.testing.assert_close(bad[name], good[name])


def test_region_metrics_are_nan_where_the_region_does_not_move_or_without_landmarks():
    landmarks = _face()
    x0 = _frames(0)
    mouth = region_masks(landmarks, SIZE)["mouth"]
    xt = torch.where(mouth, _frames(1), x0)  # only the mouth moves
    quality = metrics.frame_quality(x0, xt, x0, landmarks=landmarks)
    assert (
        torch.isfinite(quality["psnr_mouth"]).all() and torch.isfinite(quality["mae_mouth"]).all()
    )
    for name in ("psnr_eyes_brows", "mae_eyes_brows", "psnr_face_rest", "mae_face_rest"):
        assert quality[name].isnan().all(), name
    without = metrics.frame_quality(x0, xt, x0)
    assert all(without[f"{kind}_mouth"].isnan().all() for kind in ("psnr", "mae"))
    assert torch.isfinite(without["psnr_moving"]).all()
    still = metrics.frame_quality(x0, x0, x0, landmarks=landmarks)
    assert all(values.isnan().all() for values in still.values()), "no motion: all NaN"


def test_score_clip_scores_every_frame_against_the_source_and_the_whole_clip():
    x0 = _frames(0)
    target = torch.stack([x0, _frames(1), _frames(2)], dim=1)
    clip = target + 0.05 * torch.stack([_frames(3), _frames(4), _frames(5)], dim=1)
    landmarks = _face()[:, None].repeat(1, 3, 1, 1)
    scores = registry.score_clip(clip, target, x0, landmarks=landmarks)
    assert set(scores) == set(registry.keys())
    for key in registry.keys(registry.FRAME):
        assert scores[key].shape == (2, 3), key
        assert scores[key][:, 0].isnan().all(), "frame 0 is the source: nothing moves"
        one = metrics.frame_quality(clip[:, 2], target[:, 2], x0, landmarks=landmarks[:, 2])
        torch.testing.assert_close(scores[key][:, 2], one[key])
    torch.testing.assert_close(scores["temporal_error"], metrics.temporal_error(clip, target))
    assert scores["flicker"].shape == (2,)


def test_stage_logging_has_a_copy_baseline_and_gain_for_every_gain_metric():
    from frgan.models import ForecastGAN

    model = ForecastGAN(preset="tiny", image_size=16)
    logged = {}
    model.log_dict = lambda values, **_: logged.update(values)
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for k in ("x0", "s0", "xt", "st")}
    batch["lt"] = torch.from_numpy(mean_face68(16, 16)[:, :2]).float()[None].repeat(2, 1, 1)
    face = torch.stack(list(region_masks(batch["lt"], 16).values())).any(0)
    batch["xt"] = torch.where(face, batch["xt"], batch["x0"])  # the face moves: it has a rim
    model._update_quality("val", batch)
    model._log_quality("val")
    for metric in registry.select(registry.FRAME):
        for key in (f"val/{metric.key}", f"val/copy_{metric.key}"):
            assert math.isfinite(logged[key]), key
        if metric.gain:
            assert math.isfinite(logged[f"val/{metric.key}_gain"]), metric.key
    assert logged["val/mae_mouth_gain"] == pytest.approx(
        float(logged["val/copy_mae_mouth"] - logged["val/mae_mouth"])
    )
