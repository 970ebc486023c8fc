"""frgan.train under faults: resumed records, strategies with the test stage, a full disk,
damaged checkpoints, config mistakes, errors printed once."""

from __future__ import annotations

import csv
import errno
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, compose_config
from lightning_fabric.loggers.csv_logs import _ExperimentWriter

import frgan.utils.checkpoint_io as checkpoint_io
from frgan.errors import ConfigError
from frgan.models.checkpoints import load_model
from frgan.train import train
from frgan.utils.checkpoint_io import (
    CheckpointWriteError,
    DamagedCheckpointError,
    state_dict_digest,
)
from frgan.utils.cli import report_user_errors, run_hydra_app, user_error_message
from frgan.utils.config_check import check_train_config
from frgan.utils.files import is_temporary
from frgan.utils.loggers import WANDB_ID_FILE, AppendingExperimentWriter

REPO = Path(__file__).resolve().parents[1]
ONE_EPOCH = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _finish_wandb() -> None:
    import wandb

    if wandb.run is not None:
        wandb.finish()


# ---------------------------------------------------------------------------- CSV records
def test_a_second_writer_keeps_the_rows_and_merges_the_header(tmp_path):
    """What ddp_spawn does: fit and test log through writers in different processes."""
    first = AppendingExperimentWriter(str(tmp_path))
    first.log_metrics({"val/psnr": 20.0, "epoch": 0}, step=1)
    first.save()
    second = AppendingExperimentWriter(str(tmp_path))  # knows nothing of the val columns
    second.log_metrics({"test/psnr": 21.0, "epoch": 0}, step=2)
    second.save()
    second.log_metrics({"test/psnr": 22.0, "epoch": 0}, step=3)
    second.save()

    rows = _rows(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["val/psnr"] == "20.0" and rows[0]["test/psnr"] == ""
    assert rows[2]["test/psnr"] == "22.0"


def test_lightnings_own_writer_fails_where_ours_does_not(tmp_path):
    """The root cause of the ddp_sim crash, kept as a check that the subclass is still needed."""
    first = _ExperimentWriter(str(tmp_path))
    first.log_metrics({"val/psnr": 20.0}, step=1)
    first.save()
    rows_before = _rows(tmp_path / "metrics.csv")
    second = _ExperimentWriter(str(tmp_path))  # deletes metrics.csv on start
    second.log_metrics({"test/psnr": 21.0}, step=2)
    second.save()
    assert _rows(tmp_path / "metrics.csv") != [*rows_before, {"test/psnr": "21.0"}]


def test_a_row_cut_by_a_kill_is_kept_and_the_file_repaired(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,val/psnr\n0,1,20.0\n0,2,2")  # killed mid-row
    writer = AppendingExperimentWriter(str(tmp_path))
    writer.log_metrics({"val/psnr": 21.0, "epoch": 1}, step=3)
    writer.save()
    rows = _rows(path)
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["val/psnr"] == "2" and rows[2]["val/psnr"] == "21.0"


def test_resumed_run_keeps_csv_rows_and_continues_the_wandb_run(train_config, tmp_path):
    """The default strategy (cpu) and loggers (wandb offline + csv), fit + test, then resumed
    in the same run folder."""
    first = train_config("logger=default", *ONE_EPOCH)
    try:
        metrics, _ = train(first)
    finally:
        _finish_wandb()
    run = tmp_path / "run"
    assert any(k.startswith("test/") for k in metrics)
    rows_before = _rows(run / "csv" / "metrics.csv")
    assert {r["epoch"] for r in rows_before if r.get("val/psnr")} == {"0"}
    assert any(r.get("test/psnr") for r in rows_before), "the test stage logged to the CSV"
    run_id = (run / WANDB_ID_FILE).read_text().strip()

    resumed = train_config("logger=default", *ONE_EPOCH, "trainer.max_epochs=2", "ckpt_path=last")
    try:
        train(resumed)
    finally:
        _finish_wandb()
    rows_after = _rows(run / "csv" / "metrics.csv")
    assert len(rows_after) > len(rows_before)
    for before, after in zip(rows_before, rows_after, strict=False):
        assert {k: v for k, v in after.items() if v} == {k: v for k, v in before.items() if v}
    assert {r["epoch"] for r in rows_after if r.get("val/psnr")} == {"0", "1"}
    assert (run / WANDB_ID_FILE).read_text().strip() == run_id
    offline_runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(run_id) for p in offline_runs)


# ---------------------------------------------------------------------------- strategies
def test_ddp_sim_fits_and_tests_with_the_default_loggers(train_config, tmp_path):
    cfg = train_config("trainer=ddp_sim", "logger=default", *ONE_EPOCH)
    try:
        metrics, objects = train(cfg)
    finally:
        _finish_wandb()
    assert objects["trainer"].world_size == 2
    assert objects["trainer"].strategy.__class__.__name__ == "DDPStrategy"
    assert "val/psnr_moving" in metrics and "test/psnr_moving" in metrics
    rows = _rows(tmp_path / "run" / "csv" / "metrics.csv")
    assert any(r.get("val/psnr_moving") for r in rows) and any(r.get("test/psnr") for r in rows)


@pytest.mark.parametrize("strategy", ["gpu", "ddp"])
def test_gpu_strategies_compose_and_need_a_gpu(tiny_data_dir, tmp_path, strategy):
    cfg = compose_config(
        "train.yaml",
        [f"paths.data_dir={tiny_data_dir}", *TINY_DATA, *TINY_RUN, f"trainer={strategy}"],
        run_dir=tmp_path / "run",
    )
    assert cfg.trainer.accelerator == "gpu"
    if torch.cuda.device_count() >= cfg.trainer.devices:
        check_train_config(cfg)  # every key is a Trainer setting of the right type
    else:
        with pytest.raises(ConfigError, match=r"^trainer\.(accelerator|devices)="):
            check_train_config(cfg)


# ---------------------------------------------------------------------------- full disk
def _disk_full_while_writing(monkeypatch):
    def write_half(checkpoint, path):
        with open(path, "wb") as file:
            file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", write_half)


def _disk_full_when_flushing(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("frgan.utils.files.os.fsync", fsync)


@pytest.mark.parametrize("fault", [_disk_full_while_writing, _disk_full_when_flushing])
def test_full_disk_keeps_the_previous_last_ckpt_and_says_what_to_do(
    train_config, monkeypatch, fault
):
    first = train_config("test=false", *ONE_EPOCH)
    train(first)
    folder = Path(first.paths.output_dir) / "checkpoints"
    last_bytes = (folder / "last.ckpt").read_bytes()

    fault(monkeypatch)
    # without sample media, which would meet the full disk first
    resumed = train_config(
        "test=false",
        *ONE_EPOCH,
        "trainer.max_epochs=2",
        "ckpt_path=last",
        "~callbacks.sample_media",
    )
    with pytest.raises(CheckpointWriteError) as caught:
        train(resumed)
    message = str(caught.value)
    assert str(folder) in message and "disk is full" in message and "ckpt_path=last" in message
    assert (folder / "last.ckpt").read_bytes() == last_bytes
    assert not [p for p in folder.iterdir() if is_temporary(p)], "temporary files removed"


def test_checkpoint_write_error_is_one_line_and_exit_2(capsys):
    @report_user_errors
    def task():
        raise CheckpointWriteError(
            checkpoint_io.describe_write_failure(
                "/x/last.ckpt", OSError(errno.EROFS, "Read-only file system")
            )
        )

    with pytest.raises(SystemExit) as caught:
        task()
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write checkpoint /x/last.ckpt")
    assert "not writable" in err[0]


# ---------------------------------------------------------------------------- digests
def _flip_bytes_in_largest_tensor(path: Path) -> None:
    """Flip bytes in the middle of the largest tensor record of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    with open(path, "r+b") as file:
        file.seek(info.header_offset + 26)
        name_length = int.from_bytes(file.read(2), "little")
        extra_length = int.from_bytes(file.read(2), "little")
        start = info.header_offset + 30 + name_length + extra_length + info.file_size // 2
        file.seek(start)
        original = file.read(4)
        file.seek(start)
        file.write(bytes(b ^ 0xFF for b in original))


def test_flipped_weight_bytes_are_refused_unless_forced(train_config, tmp_path):
    first = train_config("test=false", *ONE_EPOCH)
    train(first)
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes((Path(first.paths.output_dir) / "checkpoints" / "last.ckpt").read_bytes())
    saved = torch.load(damaged, map_location="cpu", weights_only=True)
    assert saved[checkpoint_io.DIGEST_KEY] == state_dict_digest(saved["state_dict"])
    _flip_bytes_in_largest_tensor(damaged)

    resume = ["test=false", *ONE_EPOCH, "trainer.max_epochs=2", f"ckpt_path={damaged}"]
    with pytest.raises(
        DamagedCheckpointError, match=r"damaged\.ckpt is damaged.*ckpt_verify=false"
    ):
        train(train_config(*resume))
    with pytest.raises(DamagedCheckpointError, match="ckpt_verify=false"):
        load_model(damaged)
    _, objects = train(train_config(*resume, "ckpt_verify=false"))
    assert objects["trainer"].current_epoch == 2


# ---------------------------------------------------------------------------- config mistakes
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs"),
        ("model.lr=abc", "model.lr"),
        ("model.lr=-1", "model.lr"),
        ("seed=abc", "seed"),
        ("+model.lrr=1", "model.lrr"),
        ("+trainer.max_epoch=3", "trainer.max_epoch"),
        ("+data.batchsize=3", "data.batchsize"),
        ("trainer.limit_train_batches=-1", "trainer.limit_train_batches"),
        ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches"),
        ("model.betas=[0.5]", "model.betas"),
        ("trainer.precision=33", "trainer.precision"),
        ("train=maybe", "train"),
    ],
)
def test_config_mistakes_are_refused_naming_the_key(train_config, override, key):
    with pytest.raises(Exception) as caught:  # noqa: B017 — the message is what is checked
        train(train_config(override))
    message = user_error_message(caught.value)  # what the entry point prints
    assert message is not None and key in message and "\n" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu_is_a_config_mistake(train_config):
    with pytest.raises(ConfigError, match=r"trainer\.accelerator=gpu.*trainer=cpu"):
        train(train_config("trainer.accelerator=gpu"))


def _cli(run_dir: Path, data_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "frgan.train",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *TINY_DATA,
        *TINY_RUN,
        *overrides,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FRGAN_DEBUG")}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.lrr=1"], "model.lrr"),  # Hydra's composition error, before the task runs
        (["trainer.max_epochs=abc"], "trainer.max_epochs"),  # the task's check
    ],
)
def test_cli_config_mistake_is_printed_once_with_exit_2(
    tiny_data_dir, tmp_path, overrides, expected
):
    result = _cli(tmp_path / "run", tiny_data_dir, *overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], output


@pytest.mark.parametrize("command", ["prepare", "synth", "evaluate", "generate"])
def test_every_entry_point_reports_hydras_errors_in_one_line_with_exit_2(tmp_path, command):
    """Each command runs through run_hydra_app as frgan.train does: a key that is not in its
    config is one `error:` line and status 2, not Hydra's message and status 1."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FRGAN_DEBUG")}
    result = subprocess.run(
        [sys.executable, "-m", f"frgan.{command}", "no_such_key=1", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_such_key" in lines[0]


def test_unwritable_log_dir_is_one_line(tiny_data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _cli(blocker / "run", tiny_data_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(blocker) in lines[0]


def test_read_only_folder_is_one_line_naming_it(capsys):
    def main():
        raise PermissionError(errno.EROFS, "Read-only file system", "/ro/outputs/train")

    with pytest.raises(SystemExit) as caught:
        run_hydra_app(main)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/ro/outputs/train" in err[0] and "paths.log_dir" in err[0]


def test_user_error_message_of_a_spawned_ddp_process_is_recovered_from_its_traceback():
    from torch.multiprocessing import ProcessRaisedException

    traceback_text = (
        "\n\n-- Process 0 terminated with the following error:\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in save\n'
        "frgan.utils.checkpoint_io.CheckpointWriteError: cannot write checkpoint /r/last.ckpt\n"
    )
    assert user_error_message(ProcessRaisedException(traceback_text, 0, 123)) == (
        "cannot write checkpoint /r/last.ckpt"
    )
    bug = traceback_text.replace("frgan.utils.checkpoint_io.CheckpointWriteError", "KeyError")
    assert user_error_message(ProcessRaisedException(bug, 0, 123)) is None, (
        "a bug keeps its traceback"
    )


@pytest.mark.parametrize(
    "option",
    [
        "trainer=cpu",
        "trainer=ddp_sim",
        "debug=default",
        "debug=fdr",
        "debug=limit",
        "debug=overfit",
        "experiment=mug64_paper",
        "logger=tensorboard",
        "logger=none",
        "callbacks=none",
        "trainer.precision=bf16-mixed",
    ],
)
def test_every_shipped_option_passes_the_config_check(tmp_path, option):
    cfg = compose_config("train.yaml", [option], run_dir=tmp_path / "run")
    try:
        check_train_config(cfg)
    except ConfigError as error:  # a GPU recipe is refused without a GPU, and only for that
        assert not torch.cuda.is_available(), error
        assert str(error).startswith(("trainer.accelerator=", "trainer.devices=")), error
