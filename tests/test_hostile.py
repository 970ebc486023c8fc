"""Faults of the hostile run (issue 21): checkpoints that would run code, one run per folder,
metrics.csv after a killed run, abandoned Optuna trials, fp16 on a CPU, and output folders that
are files or read-only — each refused or repaired with one clear line."""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, TINY_RUN
from omegaconf import OmegaConf

from frgan.errors import ConfigError
from frgan.sweeps import SweepSummary
from frgan.utils.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    read_checkpoint,
)
from frgan.utils.cli import describe_os_error
from frgan.utils.config_check import check_train_config
from frgan.utils.files import LOCK_NAME, FolderInUse, exclusive_folder
from frgan.utils.loggers import ResumableCSVLogger

REPO = Path(__file__).resolve().parents[1]


class RunsAShellCommand:
    """Unpickled, it runs `command`: what a malicious .ckpt holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    payload = {"state_dict": {}, "frgan_model": RunsAShellCommand(f"touch {marker}")}
    torch.save(payload, path)
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FRGAN_DEBUG")}


def _command(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


# ------------------------------------------------------------------ checkpoints that run code
ENTRY_POINTS = {
    "generate": ["frgan.generate", "ckpt={ckpt}", "source=face.jpg", "driver=take"],
    "evaluate": ["frgan.evaluate", "ckpt={ckpt}"],
    "train resume": ["frgan.train", "ckpt_path={ckpt}", "paths.data_dir={tmp}/data"],
    "refine forecaster": [
        "frgan.train", "model=refine", "model.forecast_ckpt={ckpt}", "paths.data_dir={tmp}/data",
    ],
}  # fmt: skip


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_checkpoint_that_would_run_code_is_refused_by_every_entry_point(entry, tmp_path):
    marker = tmp_path / "PWNED"
    ckpt = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    args = [a.format(ckpt=ckpt, tmp=tmp_path) for a in ENTRY_POINTS[entry]]
    result = _command(*args, f"hydra.run.dir={tmp_path / 'run'}")
    line = _one_error_line(result)
    assert not marker.exists(), "the pickle's command ran"
    assert str(ckpt) in line and "was refused" in line and "posix.system" in line, line


def test_lightnings_own_checkpoint_reads_are_the_safe_ones(tmp_path):
    # Trainer.fit(ckpt_path=...) and .test read through the trainer's checkpoint plugin
    marker = tmp_path / "PWNED"
    ckpt = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="was refused"):
        AtomicCheckpointIO().load_checkpoint(ckpt)
    assert not marker.exists()
    trainer_config = OmegaConf.load(REPO / "conf" / "trainer" / "default.yaml")
    plugins = [p["_target_"] for p in trainer_config.plugins]
    assert "frgan.utils.checkpoint_io.AtomicCheckpointIO" in plugins


def test_a_plain_pickle_truncated_file_or_non_dict_is_one_clear_error(tmp_path):
    marker = tmp_path / "PWNED"
    raw = tmp_path / "raw.ckpt"  # not torch.save's zip: a bare pickle
    raw.write_bytes(pickle.dumps(RunsAShellCommand(f"touch {marker}")))
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": torch.nn.Linear(64, 64).state_dict()}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    a_list = tmp_path / "list.ckpt"
    torch.save([1, 2], a_list)
    for path, expected in (
        (raw, "not a readable PyTorch Lightning checkpoint"),
        (truncated, "may be truncated"),
        (a_list, "holds a list, not a dict"),
    ):
        with pytest.raises(CheckpointError, match=expected) as caught:
            read_checkpoint(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert not marker.exists()


def test_what_lightning_checkpoints_legitimately_hold_still_loads(tmp_path):
    path = tmp_path / "hparams.ckpt"
    hyper_parameters = OmegaConf.create({"preset": "tiny", "betas": [0.0, 0.9], "ema": None})
    rng = np.random.get_state()  # noqa: NPY002 — the global RNG state a resume may save
    torch.save(
        {
            "state_dict": {"w": torch.ones(2)},
            "hyper_parameters": hyper_parameters,
            "hparams_type": type(hyper_parameters),
            "numpy_rng": rng,
            "folder": Path("/data/runs"),
        },
        path,
    )
    loaded = read_checkpoint(path)
    assert loaded["hyper_parameters"] == hyper_parameters
    assert np.array_equal(loaded["numpy_rng"][1], rng[1])
    assert loaded["folder"] == Path("/data/runs")


# ------------------------------------------------------------------ one run per folder
HOLD = (
    "import sys, time\n"
    "from frgan.utils.files import exclusive_folder\n"
    "with exclusive_folder(sys.argv[1], 'run', 'set hydra.run.dir to another folder'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_a_folder_is_held_by_one_process_and_freed_when_it_is_killed(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(FolderInUse) as caught:
            with exclusive_folder(folder, "run", "set hydra.run.dir to another folder"):
                pass
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and "set hydra.run.dir to another folder" in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive_folder(
        folder, "run", "set hydra.run.dir to another folder"
    ):  # a killed holder leaves no stale lock
        with pytest.raises(FolderInUse):  # and within one process the folder is held too
            with exclusive_folder(folder, "run", "set hydra.run.dir to another folder"):
                pass


def _train_args(data_dir: Path, run_dir: Path, *overrides: str) -> list[str]:
    return ["frgan.train", f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
            *TINY_DATA, *TINY_RUN, *overrides]  # fmt: skip


def _train_rows(metrics: Path) -> list[dict[str, str]]:
    with open(metrics, newline="") as file:
        return [row for row in csv.DictReader(file) if row.get("train/l1")]


@pytest.mark.slow
def test_a_second_run_in_the_folder_is_refused_and_a_killed_one_resumes_cleanly(
    tiny_data_dir, tmp_path
):
    run = tmp_path / "run"
    long_run = (
        "trainer.limit_train_batches=1.0", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
        "+logger.csv.flush_logs_every_n_steps=1",
        "callbacks.periodic_checkpoint.every_n_train_steps=4",  # every 2nd batch (2 optimizers)
    )  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, "-m", *_train_args(tiny_data_dir, run, *long_run)],
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    metrics = run / "csv" / "metrics.csv"
    try:
        deadline = time.monotonic() + 600
        while not (metrics.is_file() and len(_train_rows(metrics)) >= 5):
            assert first.poll() is None, "the first run ended before it was caught running"
            assert time.monotonic() < deadline, "the first run never logged 5 steps"
            time.sleep(0.2)
        second = _command(*_train_args(tiny_data_dir, run, *long_run))
        line = _one_error_line(second)
        assert f"{run} is in use by another run (pid {first.pid}" in line, line
        assert first.poll() is None, "the refused run disturbed the first one"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the rest of the first epoch (the first run was killed early in it), its validation, test
    rest = ("trainer.max_epochs=1", "ckpt_path=last")
    resumed = _command(*_train_args(tiny_data_dir, run, *long_run, *rest), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [int(row["step"]) for row in _train_rows(metrics)]
    assert len(steps) == len(set(steps)), f"a step logged twice: {sorted(steps)}"
    assert steps == sorted(steps), "the resumed run's rows follow the killed run's"


def test_resuming_drops_the_rows_a_killed_run_logged_after_its_checkpoint(tmp_path):
    logger = ResumableCSVLogger(save_dir=tmp_path, name="csv", version="")
    metrics = tmp_path / "csv" / "metrics.csv"
    metrics.parent.mkdir()
    rows = ["epoch,step,test/psnr,train/l1,val/psnr"]
    rows += [f"0,{step},,0.{step}," for step in range(7)]
    rows += ["0,4,,,20.5", "1,7,31.5,,", "0,7,,0.7"]  # validation, a finished test, a cut row
    metrics.write_text("\n".join(rows))
    assert logger.forget_rows_after(4) == 3  # training steps 5, 6 and the cut 7
    with open(metrics, newline="") as file:
        kept = [(int(r["step"]), r["test/psnr"], r["val/psnr"]) for r in csv.DictReader(file)]
    assert kept == [(0, "", ""), (1, "", ""), (2, "", ""), (3, "", ""), (4, "", ""),
                    (4, "", "20.5"), (7, "31.5", "")]  # fmt: skip
    assert sorted(p.name for p in metrics.parent.iterdir()) == ["metrics.csv"], "no temporary"
    assert logger.forget_rows_after(4) == 0


# ------------------------------------------------------------------ abandoned Optuna trials
def test_trials_a_killed_sweep_left_running_are_failed_by_the_next_sweep(tmp_path, caplog):
    import optuna
    from optuna.trial import TrialState

    database = tmp_path / "optuna" / "forecast.db"
    database.parent.mkdir()
    storage = f"sqlite:///{database}"
    study = optuna.create_study(study_name="forecast", storage=storage)
    finished = study.ask()
    study.tell(finished, 1.0)
    study.ask()  # its sweep was killed: RUNNING forever
    config = OmegaConf.create(
        {"hydra": {"sweeper": {"storage": storage, "study_name": "forecast"},
                   "sweep": {"dir": str(tmp_path / "sweep")}}}
    )  # fmt: skip

    def states():
        return [t.state for t in optuna.load_study(study_name="forecast", storage=storage).trials]

    # while another sweep runs on the study, its RUNNING trials may be live: left alone
    other = open(database.with_name(database.name + ".sweeps.lock"), "a")
    fcntl.flock(other, fcntl.LOCK_SH)
    callback = SweepSummary()
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert states() == [TrialState.COMPLETE, TrialState.RUNNING]
    other.close()

    callback = SweepSummary()
    with caplog.at_level("WARNING", logger="frgan.sweeps"):
        callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert states() == [TrialState.COMPLETE, TrialState.FAIL]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "Optuna study forecast: trial(s) 1 were left RUNNING by a sweep that was killed; "
        "marked FAIL"
    ]


# ------------------------------------------------------------------ settings said in one line
def test_fp16_on_a_cpu_is_refused_rather_than_run_as_bf16(train_config):
    for precision in ("16-mixed", "16"):
        with pytest.raises(ConfigError, match=f"trainer.precision={precision} needs a CUDA GPU"):
            check_train_config(train_config(f"trainer.precision={precision}"))
    check_train_config(train_config("trainer.precision=bf16-mixed"))


def test_an_output_folder_that_is_a_file_is_one_line_naming_the_key(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    generate = _command(
        "frgan.generate", "ckpt=x.ckpt", "source=face.jpg", "driver=take", f"out={blocker}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    line = _one_error_line(generate)
    assert f"cannot write {blocker}: a file stands where a folder is needed; set out to" in line
    train = _command("frgan.train", f"hydra.run.dir={blocker}")
    line = _one_error_line(train)
    assert f"{blocker}" in line and "set hydra.run.dir to a folder" in line, line


@pytest.mark.parametrize(
    ("argv", "failed", "key"),
    [
        (["out=/ro/gen"], "/ro/gen/.animation.tmp-1.mp4", "out"),
        (["-m", "hydra.sweep.dir=/ro/sweeps/today"], "/ro/sweeps", "hydra.sweep.dir"),
        (["hydra.run.dir='/ro/run'"], "/ro/run/train.log", "hydra.run.dir"),
        (["paths.log_dir=/elsewhere"], "/ro/outputs", "paths.log_dir"),
        ([], "/ro/outputs/train", "paths.log_dir"),
    ],
)
def test_unwritable_folder_messages_name_the_key_the_user_set(argv, failed, key):
    for code, strerror in ((errno.EROFS, "Read-only file system"), (errno.EACCES, "denied")):
        message = describe_os_error(PermissionError(code, strerror, failed), argv)
        assert f"cannot write {failed}: {strerror}" in message
        assert f"set {key} to a" in message, message
        others = {"out", "hydra.run.dir", "hydra.sweep.dir", "paths.log_dir"} - {key}
        assert not any(f"set {other} " in message for other in others), message


def test_the_lock_file_is_hidden_and_names_its_holder(tmp_path):
    with exclusive_folder(tmp_path / "run", "run", "set hydra.run.dir to another folder"):
        text = (tmp_path / "run" / LOCK_NAME).read_text()
    assert LOCK_NAME.startswith(".") and text.startswith(f"pid {os.getpid()} on ")


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"])
def test_processes_of_other_ranks_do_not_take_the_run_folder(
    train_config, tmp_path, monkeypatch, variable
):
    from frgan.train import train

    cfg = train_config("train=false", "test=false")
    with exclusive_folder(tmp_path / "run", "run", "set hydra.run.dir to another folder"):
        monkeypatch.setenv(variable, "1")  # a DDP process of rank 1 runs train() too
        train(cfg)
        monkeypatch.delenv(variable)
        with pytest.raises(FolderInUse):
            train(cfg)


def _forecast_checkpoint(model, path: Path, changes: dict) -> Path:
    """A checkpoint of `model` as on_save_checkpoint writes it, `changes` applied, its digest
    recomputed: a consistent file, not a damaged one."""
    from frgan.utils.checkpoint_io import add_digest

    checkpoint = {"state_dict": model.state_dict(), "pytorch-lightning_version": "2.6.6"}
    model.on_save_checkpoint(checkpoint)
    checkpoint.update(changes)
    add_digest(checkpoint)
    torch.save(checkpoint, path)
    return path


def test_edited_weights_or_a_foreign_identity_are_one_clear_error(train_config, tmp_path):
    import hydra

    model = hydra.utils.instantiate(train_config().model)
    weights = dict(model.state_dict())
    name = next(k for k in weights if k.endswith("weight"))
    weights[name] = torch.zeros(3, 3)
    cases = {
        "edited.ckpt": ({"state_dict": weights}, f"{name} is (3, 3), the model's is"),
        "renamed.ckpt": ({"state_dict": {"x": torch.ones(1)}}, "weights missing"),
        "list_identity.ckpt": ({"frgan_model": [1, 2], 3: "int key"}, "not a FRGAN model"),
    }
    for file, (changes, expected) in cases.items():
        path = _forecast_checkpoint(model, tmp_path / file, changes)
        with pytest.raises(ValueError) as caught:
            model.check_checkpoint(path)
        message = str(caught.value)
        assert expected in message and str(path) in message and "\n" not in message, message


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).symlink_to(target)
    with pytest.raises(FolderInUse, match="is a symbolic link, not the lock file of a run"):
        with exclusive_folder(tmp_path / "run", "run", "set hydra.run.dir to another folder"):
            pass
    assert target.read_text() == "keep me"


def test_a_device_or_fifo_given_as_checkpoint_is_not_a_file():
    from frgan.utils.checkpoint_io import find_checkpoint

    for read in (read_checkpoint, find_checkpoint):
        with pytest.raises(CheckpointError, match="checkpoint /dev/null is not a file"):
            read("/dev/null")
