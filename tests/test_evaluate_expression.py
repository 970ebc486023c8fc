"""frgan.evaluate's expression analysis: summaries with known answers, the choice of frames
and runs, and the protocol on the tiny synthetic set with MediaPipe (skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, compose_config
from test_expression_metrics import face, open_mouth

import frgan.evaluation.expression as protocol
from frgan.data.datasets import face68_points, to_image_tensor
from frgan.data.shards import TakeSample
from frgan.errors import ConfigError
from frgan.evaluation.expression import (
    ExpressionSettings,
    blink_picks,
    cross_identity_runs,
    expression_settings,
    subset,
    usable_apex,
)
from frgan.evaluation.expression_report import expression_key_lines, expression_markdown
from frgan.evaluation.expression_summary import (
    amplitude_summary,
    calibrated,
    summarize_same_identity,
)

MEASURES = ("mouth_opening", "eye_opening", "brow_height")


def record(expression: str, subject: str, truth: float, generated: float, **extra) -> dict:
    """A pair whose every measure changes by `truth` in the truth and `generated` in the
    forecast; the forecast is 1 px off the truth, the copy 2 px, the JPEG copy 0.5 px."""
    cell = lambda d: {"raw": d, "aligned": d / 2}  # noqa: E731
    distances = lambda d: {g: cell(d) for g in ("all", "lips", "brows")}  # noqa: E731
    return {
        "take": f"{subject}/{expression}",
        "subject": subject,
        "expression": expression,
        "frame": 5,
        "kind": extra.get("kind", "apex"),
        "found": {"truth": True, "source": True, "noise_floor": True, "forecast": True},
        "truth_landmarks_change": dict.fromkeys(MEASURES, truth),
        "change": {
            "truth": dict.fromkeys(MEASURES, truth),
            "forecast": dict.fromkeys(MEASURES, generated),
        },
        "distance": {
            "forecast": distances(1.0),
            "copy_first_frame": distances(2.0),
            "noise_floor": distances(0.5),
        },
    }


def test_summaries_have_the_known_answers():
    records = [
        record("happiness", "s1", 0.2, 0.1),
        record("happiness", "s2", 0.1, 0.05),
        record("surprise", "s1", 0.3, 0.3),
        record("sadness", "s2", 0.001, 0.05),  # the truth hardly moves: no ratio
        record("anger", "s1", -0.05, -0.01),  # lowered brows
        record("anger", "s2", -0.1, 0.0, kind="blink"),
        record("fear", "s1", -0.1, -0.08, kind="blink"),  # closes: more than half the truth
    ]
    missed = record("fear", "s2", 0.2, None)
    missed["found"]["forecast"] = False
    missed["change"]["forecast"] = dict.fromkeys(MEASURES, None)
    missed["distance"]["forecast"] = {
        g: {"raw": None, "aligned": None} for g in ("all", "lips", "brows")
    }
    records.append(missed)
    summary = summarize_same_identity(records, ["forecast"], ExpressionSettings())
    assert summary["pairs"] == 6 and summary["blink_frames"] == 2
    assert summary["detection"]["forecast"] == {"frames": 8, "missed": 1}
    distances = summary["distances"]
    assert distances["forecast"]["lips"] == {"raw": 1.0, "aligned": 0.5, "pairs": 5}
    assert distances["copy_first_frame"]["all"]["pairs"] == 6
    assert distances["noise_floor"]["brows"]["raw"] == 0.5
    mouth = summary["amplitude"]["forecast"]["mouth_opening"]
    assert mouth["per_expression"]["happiness"]["ratio"] == pytest.approx(0.5)
    assert mouth["per_expression"]["surprise"]["ratio"] == pytest.approx(1.0)
    assert mouth["per_expression"]["sadness"]["ratio"] is None
    assert "hardly moves" in mouth["per_expression"]["sadness"]["reason"]
    assert mouth["per_expression"]["fear"]["pairs"] == 0, "a missed face is not scored"
    assert set(mouth["per_subject"]) == {"s1", "s2"}
    assert summary["amplitude"]["forecast"]["lowered_brows"]["ratio"] == pytest.approx(0.2)
    assert summary["amplitude"]["forecast"]["lowered_brows"]["pairs"] == 1
    blinks = summary["amplitude"]["forecast"]["blinks"]
    assert blinks["ratio"] == pytest.approx(0.4) and blinks["pairs"] == 2
    assert blinks["closed"] == 1 and blinks["visible"] == 2
    reading = summary["detector_calibration"]["mouth_opening"]
    assert reading["overall"] == pytest.approx(1.0)
    assert reading["per_expression"]["happiness"] == pytest.approx(1.0)


def test_amplitude_summary_reports_error_and_means():
    truth = np.array([0.1, 0.3])
    summary = amplitude_summary(truth / 2, truth, truth, 0.02)
    assert summary["ratio"] == pytest.approx(0.5)
    assert summary["error"] == pytest.approx(0.1)
    assert summary["truth_change"] == pytest.approx(0.2) and summary["pairs"] == 2
    assert summary["ratio_low"] == pytest.approx(0.5) == summary["ratio_high"], "no spread"
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.05, 0.3, 40)
    noisy = amplitude_summary(0.6 * truth + rng.normal(0, 0.05, 40), truth, truth, 0.02)
    assert noisy["ratio_low"] < noisy["ratio"] < noisy["ratio_high"]
    assert noisy["ratio_low"] < 0.6 < noisy["ratio_high"]
    assert amplitude_summary(truth[:1], truth[:1], truth[:1], 0.02)["ratio_low"] is None


def test_cross_identity_ratios_are_calibrated_by_the_detectors_reading():
    ratio = lambda r: {"ratio": r, "pairs": 3}  # noqa: E731
    amplitude = {
        "forecast": {
            measure: {
                "overall": ratio(0.31),
                "per_expression": {"happiness": ratio(0.2), "surprise": ratio(0.5), "x": ratio(1)},
                "per_target_subject": {"s1": ratio(0.3)},
            }
            for measure in MEASURES
        }
    }
    reading = {
        measure: {"overall": 0.62, "per_expression": {"happiness": 0.4, "surprise": 0.05}}
        for measure in MEASURES
    }
    mouth = calibrated(amplitude, reading)["forecast"]["mouth_opening"]
    assert mouth["overall"]["calibrated_ratio"] == pytest.approx(0.5)
    assert mouth["per_expression"]["happiness"]["calibrated_ratio"] == pytest.approx(0.5)
    assert mouth["per_expression"]["surprise"]["calibrated_ratio"] is None, "reading too weak"
    assert mouth["per_expression"]["x"]["calibrated_ratio"] is None, "no reading"
    assert mouth["per_target_subject"] == {"s1": ratio(0.3)}


def test_blinks_are_picked_once_per_blink_and_kept_out_of_the_apex():
    base = face()
    frames = []
    for t in range(16):
        frame = open_mouth(base, min(t, 8) * 0.5)
        if t in (3, 4, 11):  # two blinks, the second deeper
            depth = 1.0 if t == 11 else 0.8
            frame[[37, 38, 43, 44]] += depth * (frame[[41, 40, 47, 46]] - frame[[37, 38, 43, 44]])
        frames.append(frame)
    take = np.stack(frames)
    assert blink_picks(take, 2, 0.5).tolist() == [3, 11]
    assert blink_picks(take, 1, 0.5).tolist() == [11], "the deepest blink first"
    apex = usable_apex(take, 3, 0.5, margin=2)
    assert not set(apex.tolist()) & set(range(9, 14)), "no frame within 2 of a blink"
    assert apex.tolist() == [8, 14, 15]


def _take(subject: str, expression: str) -> TakeSample:
    return TakeSample(
        f"{subject}/{expression}",
        np.zeros((2, 8, 8, 3), np.uint8),
        np.zeros((2, 68, 3), np.float32),
        {"subject": subject, "expression": expression},
    )


def test_cross_identity_runs_drive_each_subject_by_the_others():
    takes = [_take(s, e) for s in ("a", "b", "c") for e in ("happiness", "surprise", "happiness")]
    runs = cross_identity_runs(takes, takes_per_expression=1, max_runs=None)
    assert len(runs) == 3 * 2 * 2, "one take per (other subject, expression)"
    assert all(target.meta["subject"] != driver.meta["subject"] for target, driver in runs)
    assert {target.key for target, _ in runs} == {"a/happiness", "b/happiness", "c/happiness"}
    assert len(cross_identity_runs(takes, 2, None)) == 3 * 2 * 3
    bounded = cross_identity_runs(takes, 1, max_runs=5, seed=1)
    assert len(bounded) == 5 and bounded == cross_identity_runs(takes, 1, 5, seed=1)
    assert subset(list(range(10)), 4, seed=0) == sorted(subset(list(range(10)), 4, seed=0))


def test_settings_are_checked():
    assert expression_settings(False) is None
    assert expression_settings({"enabled": False}) is None
    settings = expression_settings({"apex_per_take": 2, "cross_identity": False})
    assert settings.apex_per_take == 2 and settings.cross_identity is False
    with pytest.raises(ConfigError, match="apex_per_take"):
        expression_settings({"apex_per_take": 0})
    with pytest.raises(ConfigError, match="closed_fraction"):
        expression_settings({"closed_fraction": 1.5})
    with pytest.raises(ConfigError, match="unknown"):
        expression_settings({"apex_per_tkae": 2})
    with pytest.raises(ConfigError, match="false or a mapping"):
        expression_settings("yes")


class Oracle(torch.nn.Module):
    """A forecast 'model' that paints the true frame of every structure map it is shown
    (truth=True), or copies the source frame (truth=False)."""

    data_stage = "forecast"

    def __init__(self, takes, render, truth: bool = True):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.truth = truth
        self.frames = {
            bytes(map_.tobytes()): frame
            for take in takes
            for map_, frame in zip(
                render(take.landmarks), to_image_tensor(take.frames), strict=True
            )
        }

    def animate(self, x0, s0, structures, l0=None, landmarks=None):
        if not self.truth:
            return {"forecast": x0[:, None].expand_as(structures)}
        painted = [self.frames[bytes(m.cpu().numpy().tobytes())] for m in structures[0]]
        return {"forecast": torch.stack(painted)[None]}


@pytest.fixture(scope="module")
def tiny_test_takes(tiny_data_dir):
    import hydra

    cfg = compose_config("train.yaml", [f"paths.data_dir={tiny_data_dir}", *TINY_DATA])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("test")
    return list(datamodule.takes("test")), datamodule.render


def test_a_face_that_paints_the_truth_scores_full_amplitude_and_copying_none(tiny_test_takes):
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    takes, render = tiny_test_takes
    settings = ExpressionSettings(progress=False, cross_identity=False, min_change=1e-6)
    detector = protocol.Redetector(settings.upscale)
    truth = protocol.run_expression_protocol(
        Oracle(takes, render), takes, render, settings, detector=detector
    )
    same = truth["same_identity"]
    assert truth["methods"] == ["forecast"] and same["pairs"] > 0
    assert same["detection"]["truth"]["missed"] == 0, "MediaPipe finds the synthetic faces"
    for group in ("all", "lips", "brows"):
        assert same["distances"]["forecast"][group]["raw"] == 0.0
        assert same["distances"]["copy_first_frame"][group]["raw"] > 0.0
    for measure in MEASURES:
        assert same["amplitude"]["forecast"][measure]["overall"]["ratio"] == pytest.approx(1.0)
    copy = protocol.run_expression_protocol(
        Oracle(takes, render, truth=False), takes, render, settings, detector=detector
    )["same_identity"]
    assert copy["distances"]["forecast"] == copy["distances"]["copy_first_frame"]
    for measure in MEASURES:
        assert copy["amplitude"]["forecast"][measure]["overall"]["ratio"] == 0.0
    assert copy["amplitude"]["forecast"]["blinks"]["closed"] == 0
    json.dumps(truth, allow_nan=False)  # metrics.json carries it as it is


def test_cross_identity_of_a_copying_face_follows_nothing(tiny_test_takes):
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (no wheel for this Python)")
    takes, render = tiny_test_takes
    # the tiny set has one test subject: present half its takes as another subject's
    relabelled = [
        TakeSample(
            t.key, t.frames, t.landmarks, t.meta | {"subject": f"{t.meta['subject']}{i % 2}"}
        )
        for i, t in enumerate(takes)
    ]
    settings = ExpressionSettings(progress=False, min_change=1e-6, blinks_per_take=0)
    payload = protocol.run_expression_protocol(
        Oracle(takes, render, truth=False), relabelled, render, settings
    )
    cross = payload["cross_identity"]
    assert cross["runs"] == len(cross_identity_runs(relabelled, 1, None)) > 0
    assert cross["detection"]["forecast"]["missed"] == 0
    mouth = cross["amplitude"]["forecast"]["mouth_opening"]
    assert mouth["overall"]["ratio"] == 0.0 and mouth["overall"]["pairs"] == cross["pairs"]
    assert set(mouth["per_target_subject"]) <= {r.meta["subject"] for r in relabelled}
    assert len(cross["records"]) == cross["pairs"]
    lines = expression_key_lines(payload)
    assert any("cross-identity forecast mouth opening" in line for line in lines)
    assert "### Cross identity" in "\n".join(expression_markdown(payload))


def test_frames_without_a_redetected_face_are_counted_and_left_out(tiny_test_takes):
    """A detector that finds no face on the source frame (nor on the copying forecast, the
    same picture): every amplitude and the copy row lose their pairs, and say so."""
    takes, render = tiny_test_takes

    def blind_to_the_source(frames):
        found = np.repeat(face()[None], len(frames), axis=0)
        found[(frames == frames[0]).all(axis=(1, 2, 3))] = np.nan
        return found

    settings = ExpressionSettings(progress=False, cross_identity=False)
    payload = protocol.run_expression_protocol(
        Oracle(takes, render, truth=False), takes, render, settings, detector=blind_to_the_source
    )
    same = payload["same_identity"]
    scored = same["pairs"] + same["blink_frames"]
    assert same["detection"]["source"] == {"frames": scored, "missed": scored}
    assert same["detection"]["forecast"]["missed"] == scored
    assert same["detection"]["truth"]["missed"] == 0
    assert same["distances"]["copy_first_frame"]["lips"] == {
        "raw": None,
        "aligned": None,
        "pairs": 0,
    }
    assert same["distances"]["noise_floor"]["lips"]["pairs"] == same["pairs"]
    mouth = same["amplitude"]["forecast"]["mouth_opening"]["overall"]
    assert mouth["pairs"] == 0 and mouth["ratio"] is None
    json.dumps(payload, allow_nan=False)
    report = "\n".join(expression_markdown(payload))
    assert f"source {scored}/{scored}" in report and "n/a" in report


class MapPainter(torch.nn.Module):
    """Paints each structure map as the frame; remembers the clip lengths it was shown."""

    def __init__(self, data_stage: str):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.data_stage, self.lengths, self.landmarks = data_stage, [], []

    def animate(self, x0, s0, structures, l0=None, landmarks=None):
        self.lengths.append(structures.shape[1])
        self.landmarks.append((l0, landmarks))
        return {"forecast": structures}


def test_a_clip_model_sees_the_clip_up_to_the_last_frame_and_gives_the_same_frames(
    tiny_test_takes,
):
    takes, render = tiny_test_takes
    take = takes[0]
    x0, frames = to_image_tensor(take.frames[0]), [1, len(take.frames) - 1]
    per_frame, clip = MapPainter("forecast"), MapPainter("refine")
    independent = protocol.animate_frames(per_frame, x0, take.landmarks, frames, render)
    whole = protocol.animate_frames(clip, x0, take.landmarks, frames, render)
    assert per_frame.lengths == [2] and clip.lengths == [len(take.frames)]
    # a forecaster that warps by the landmarks is given those the maps were drawn from
    points = face68_points(take.landmarks)
    torch.testing.assert_close(per_frame.landmarks[0][0], points[None, 0])
    torch.testing.assert_close(per_frame.landmarks[0][1], points[None, frames])
    np.testing.assert_array_equal(independent["forecast"], whole["forecast"])
    expected = render(take.landmarks[frames])
    np.testing.assert_array_equal(whole["forecast"], protocol.to_uint8(torch.from_numpy(expected)))
