"""frgan.evaluate on a tiny trained model and the tiny synthetic set: the outputs, the same
numbers twice, FVD skipped without weights, and every user error as one line."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, compose_config
from test_fvd import PooledFeatures

import frgan.data.landmarks.mediapipe_source as mediapipe_source
import frgan.evaluate as evaluate_module
from frgan.data.errors import DataError, LandmarkSourceUnavailable
from frgan.errors import ConfigError
from frgan.evaluate import evaluate
from frgan.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_data_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("forecast_run")
    cfg = compose_config(
        "train.yaml",
        [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, "test=false"],
        run_dir=run,
    )
    train(cfg)
    return run


def _config(data_dir: Path, run_dir: Path, *overrides: str):
    data = [o for o in TINY_DATA if not o.startswith("data.batch_size")]
    base = [
        f"paths.data_dir={data_dir}",
        *data,
        "evaluation.frames=9",  # tiny takes have 5-7 frames: padded, as the protocol says
        "evaluation.batch_size=2",
        "evaluation.progress=false",
    ]
    return compose_config("evaluate.yaml", [*base, *overrides], run_dir=run_dir)


@pytest.fixture
def small_i3d(monkeypatch):
    """FVD plumbing with a cheap deterministic extractor in place of the 224 px I3D."""
    monkeypatch.setattr(evaluate_module, "load_i3d", lambda weights=None: PooledFeatures())


def test_evaluation_writes_the_report_and_repeats_its_numbers(
    tiny_data_dir, tiny_checkpoint, tmp_path, small_i3d
):
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        evaluate(_config(tiny_data_dir, run, f"ckpt={tiny_checkpoint}"))
    for name in ("metrics.json", "report.md", "psnr.png", "ssim.png", "samples.gif"):
        assert (runs[0] / name).is_file(), name
    first, second = (json.loads((run / "metrics.json").read_text()) for run in runs)
    assert first == second, "the same inputs give the same numbers"
    if importlib.util.find_spec("mediapipe") is not None:
        expression = first["expression"]
        assert expression["status"] == "computed" and expression["same_identity"]["pairs"] > 0
        for name in ("expression_amplitude.png", "expression_subjects.png"):
            assert (runs[0] / name).is_file(), name
        assert "## Expression" in (runs[0] / "report.md").read_text()
    methods = first["methods"]
    assert list(methods) == ["copy_first_frame", "forecast"]
    protocol = first["protocol"]
    assert protocol["videos"] == protocol["takes"] == 6  # one test subject, six expressions
    assert protocol["frames_per_video"] == 9 and protocol["resolution"] == "64x64"
    assert "padded" in protocol["clip_selection"]
    copy = methods["copy_first_frame"]
    assert copy["per_frame"]["psnr"][0] is None, "frame 0 is the source: nothing to measure"
    assert len(copy["per_frame"]["ssim_moving"]) == 9
    assert copy["temporal_error"] > 0 and copy["clips_fake"] == protocol["videos"]
    # face regions (masks from the true frames' landmarks): scored for every method
    for method in methods.values():
        assert method["psnr_mouth"] is not None and method["mae_eyes_brows"] is not None
    assert len(copy["per_frame"]["psnr_face_rest"]) == 9
    assert first["fvd"]["status"] == "computed" and methods["forecast"]["fvd"] is not None
    report = (runs[0] / "report.md").read_text()
    assert "| copy first frame |" in report and "| forecast only |" in report
    assert "frames each, 64x64 px" in report and "seeds: evaluate 12345" in report
    assert "resize tf1: the original FVD's" in report and "95% jackknife interval" in report
    forecast = methods["forecast"]
    assert forecast["fvd_low"] <= forecast["fvd"] <= forecast["fvd_high"]
    assert "PSNR mouth dB ↑" in report and "MAE rest of face ↓" in report


def test_fvd_is_skipped_and_says_why_without_weights(tiny_data_dir, tiny_checkpoint, tmp_path):
    run = tmp_path / "run"
    payload = evaluate(
        _config(
            tiny_data_dir,
            run,
            f"ckpt={tiny_checkpoint}",
            f"evaluation.fvd.weights={tmp_path / 'absent.ckpt'}",
            "evaluation.sample_videos=0",
        ),
        command=["python", "-m", "frgan.evaluate", "ckpt=<run>"],
    )
    assert payload["fvd"]["status"] == "skipped"
    assert "make install" in payload["fvd"]["reason"]
    assert "fvd" not in payload["methods"]["forecast"], "no made-up number"
    report = (run / "report.md").read_text()
    assert "FVD: skipped" in report
    assert not (run / "samples.gif").exists()
    # the report says how it was made; metrics.json keeps only numbers that repeat
    assert "- command: `python -m frgan.evaluate 'ckpt=<run>'`" in report
    for field in ("commit", "machine", "date"):
        assert f"\n- {field}: " in report.split("| method |")[0]
    assert "provenance" not in json.loads((run / "metrics.json").read_text())


def test_user_errors_are_clear(tiny_data_dir, tiny_checkpoint, tmp_path):
    def run(*overrides):
        return evaluate(_config(tiny_data_dir, tmp_path / "run", "evaluation=no_fvd", *overrides))

    with pytest.raises(ConfigError, match="ckpt="):
        run()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(f"ckpt={tmp_path / 'missing.ckpt'}")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="not a FRGAN model checkpoint"):
        run(f"ckpt={other}")
    with pytest.raises(ConfigError, match="data.image_size=64"):
        run(f"ckpt={tiny_checkpoint}", "data.image_size=96")
    with pytest.raises(
        ConfigError, match="evaluation.fvd.resize='bicubic' is invalid; valid values: tf1, torch"
    ):
        run(f"ckpt={tiny_checkpoint}", "evaluation.fvd.resize=bicubic")
    with pytest.raises(ConfigError, match="evaluation.fvd.interval must be true or false"):
        run(f"ckpt={tiny_checkpoint}", "evaluation.fvd.interval=200")


def test_a_dataset_without_test_split_is_refused(tiny_data_dir, tiny_checkpoint, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data_dir)
    manifest_file = next(data_dir.glob("synthetic/shards/*/manifest.json"))
    manifest = json.loads(manifest_file.read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["split"] != "test"]
    manifest_file.write_text(json.dumps(manifest))
    cfg = _config(data_dir, tmp_path / "run", f"ckpt={tiny_checkpoint}", "evaluation=no_fvd")
    with pytest.raises(DataError, match="test split"):
        evaluate(cfg)


@pytest.mark.slow  # a fresh interpreter: the in-process tests above cover the same errors
def test_command_line_error_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "frgan.evaluate",
            f"ckpt={tmp_path / 'none.ckpt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "none.ckpt" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_expression_analysis_is_skipped_without_mediapipe_off_on_request_and_checked(
    tiny_data_dir, tiny_checkpoint, tmp_path, monkeypatch
):
    def unavailable():
        raise LandmarkSourceUnavailable("the mediapipe landmark source needs MediaPipe")

    monkeypatch.setattr(mediapipe_source, "_face_mesh_module", unavailable)
    run = tmp_path / "run"
    payload = evaluate(_config(tiny_data_dir, run, f"ckpt={tiny_checkpoint}", "evaluation=no_fvd"))
    assert payload["expression"] == {
        "status": "skipped",
        "reason": "the mediapipe landmark source needs MediaPipe",
    }
    assert "Skipped: the mediapipe" in (run / "report.md").read_text()
    off = evaluate(
        _config(
            tiny_data_dir,
            tmp_path / "off",
            f"ckpt={tiny_checkpoint}",
            "evaluation=no_fvd",
            "evaluation.expression=false",
        )
    )
    assert "expression" not in off
    with pytest.raises(ConfigError, match="evaluation.expression.upscale"):
        evaluate(
            _config(
                tiny_data_dir,
                tmp_path / "bad",
                f"ckpt={tiny_checkpoint}",
                "evaluation=no_fvd",
                "evaluation.expression.upscale=0",
            )
        )


def test_a_model_of_the_other_structure_mesh_is_refused(tiny_data_dir, tiny_checkpoint, tmp_path):
    from frgan.utils.checkpoint_io import add_digest, find_checkpoint, read_checkpoint

    face68 = find_checkpoint(tiny_checkpoint)
    checkpoint = read_checkpoint(face68)  # the same weights, labelled as trained on mesh468
    checkpoint["hyper_parameters"]["structure_mesh"] = "mesh468"
    checkpoint["frgan_model"].update(structure_mesh="mesh468", landmark_points=468)
    add_digest(checkpoint)
    mesh468 = tmp_path / "mesh468.ckpt"
    torch.save(checkpoint, mesh468)
    for ckpt, data_mesh, model_mesh in (
        (mesh468, "face68", "mesh468"),
        (face68, "mesh468", "face68"),
    ):
        cfg = _config(
            tiny_data_dir, tmp_path / data_mesh, f"ckpt={ckpt}", "evaluation=no_fvd",
            f"data.structure_mesh={data_mesh}",
        )  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            evaluate(cfg)
        assert str(caught.value) == (
            f"{ckpt} was trained on {model_mesh} landmarks, but data.structure_mesh={data_mesh}; "
            f"set data.structure_mesh={model_mesh} to evaluate it on {model_mesh} shards (or "
            f"evaluate a model of {data_mesh})"
        )
        assert not (tmp_path / data_mesh / "metrics.json").exists()


def test_weights_that_do_not_fit_their_model_are_one_line(tiny_data_dir, tiny_checkpoint, tmp_path):
    from frgan.errors import FRGANError
    from frgan.utils.checkpoint_io import add_digest, find_checkpoint, read_checkpoint

    checkpoint = read_checkpoint(find_checkpoint(tiny_checkpoint))
    name = next(k for k in checkpoint["state_dict"] if k.endswith("weight"))
    checkpoint["state_dict"][name] = torch.zeros(3, 3)
    add_digest(checkpoint)  # a whole file whose weights do not fit its model, not a damaged one
    edited = tmp_path / "edited.ckpt"
    torch.save(checkpoint, edited)
    cfg = _config(tiny_data_dir, tmp_path / "run", f"ckpt={edited}", "evaluation=no_fvd")
    with pytest.raises(FRGANError, match=f"{edited}: its weights do not fit the model"):
        evaluate(cfg)


def test_evaluate_renders_the_structure_maps_the_model_was_trained_on(
    tiny_data_dir, tiny_checkpoint, tmp_path, monkeypatch
):
    # a model trained on normal_parts maps was evaluated on plain normal maps (the default)
    import shutil

    from omegaconf import OmegaConf

    from frgan.data import structure

    run = tmp_path / "parts_run"
    shutil.copytree(tiny_checkpoint, run)
    (run / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save({"data": {"structure": "normal_parts"}}, run / ".hydra" / "config.yaml")
    kinds = []
    original = structure.StructureRenderer.__init__

    def recording(self, kind="normal", *args, **kwargs):
        kinds.append(kind)
        original(self, kind, *args, **kwargs)

    monkeypatch.setattr(structure.StructureRenderer, "__init__", recording)
    evaluate(
        _config(
            tiny_data_dir, tmp_path / "eval", f"ckpt={run}", "evaluation=no_fvd",
            "evaluation.expression=false",
        )
    )  # fmt: skip
    assert kinds and set(kinds) == {"normal_parts"}
