"""Scale-out run for real, on this machine's loopback interface only: torchrun with 2 nodes x 1
process (two agents, c10d rendezvous, gloo) and Hydra's submitit launcher with its local
executor, each through fit and test, a SIGKILL and the resumption; rank 0 alone writes the run
folder, and the 2-node run trains exactly like trainer=ddp_sim with the same seed."""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA, TINY_RUN, wait_for

from frgan.utils.checkpoint_io import read_checkpoint
from frgan.utils.cli import EXIT_JOB_LOST, run_hydra_app
from frgan.utils.ranks import RANK_VARIABLES, RankZeroFileHandler, rank_zero_only

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# every process on one thread: the same arithmetic whatever launched it, and 2 processes on
# 2 cores do not crowd each other
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
RUN_TIMEOUT = 900.0


@pytest.mark.parametrize("rank", [0, 1])
def test_hydras_run_files_are_written_by_global_rank_zero_only_errors_by_all(
    monkeypatch, tmp_path, rank
):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", str(rank))
    log_file = tmp_path / "train.log"
    handler = RankZeroFileHandler(log_file, delay=True)
    handler.emit(logging.makeLogRecord({"msg": "model: ...", "levelno": logging.INFO}))
    handler.flush()
    assert log_file.exists() == (rank == 0)
    # every rank's errors reach the run's log file
    handler.emit(logging.makeLogRecord({"msg": "error: ...", "levelno": logging.ERROR}))
    handler.close()
    expected = ["model: ...", "error: ..."] if rank == 0 else ["error: ..."]
    assert log_file.read_text().splitlines() == expected
    assert rank_zero_only(".hydra") == (".hydra" if rank == 0 else None)


def test_a_sweep_job_lost_by_the_submitit_launcher_is_one_line(capsys):
    utils = pytest.importorskip("submitit.core.utils", reason="the `slurm` extra is not installed")

    def sweep():
        raise utils.UncompletedJobError(
            "Job 7 (task: 0) with path /sweep/.submitit/7/7_0_result.pkl\n"
            "has not produced any output (state: INTERRUPTED)\nError stream produced:\n..."
        )

    with pytest.raises(SystemExit) as stopped:
        run_hydra_app(sweep)
    assert stopped.value.code == EXIT_JOB_LOST
    assert capsys.readouterr().err == (
        "error: a job of the sweep ended without a result (Job 7 (task: 0) with path "
        "/sweep/.submitit/7/7_0_result.pkl has not produced any output (state: INTERRUPTED)); "
        "run the same command again with ckpt_path=auto to resume the unfinished jobs from "
        "their last.ckpt\n"
    )


def _loopback_interface() -> str:
    """The loopback interface's name (gloo must not pick the machine's network address)."""
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if not names:
        pytest.skip("no loopback interface found")
    return names[0]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    return {
        **env,
        **ONE_THREAD,
        "WANDB_MODE": "offline",
        "GLOO_SOCKET_IFNAME": _loopback_interface(),
        "MASTER_ADDR": LOOPBACK,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _train_overrides(data_dir: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *TINY_DATA,
        *TINY_RUN,
        "logger=default",
        "extras.print_config=true",
        *overrides,
    ]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = [int(child) for child in children]
    return found + [grandchild for child in found for grandchild in _descendants(child)]


class TwoNodes:
    """Two torchrun agents on the loopback interface, one process each: node 0 hosts the c10d
    rendezvous store, both run `python -m frgan.train trainer=torchrun ...`."""

    def __init__(self, folder: Path, overrides: list[str]):
        port, run_id = _free_port(), uuid.uuid4().hex[:8]
        self.logs = [folder / f"agent{node}.log" for node in range(2)]
        self.agents: list[subprocess.Popen] = []
        for node, log_path in enumerate(self.logs):
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={LOOPBACK}:{port}",
                f"--rdzv-id={run_id}",
                f"--rdzv-conf=is_host={int(node == 0)}",
                f"--local-addr={LOOPBACK}",
                "--max-restarts=0",
                "-m",
                "frgan.train",
                "trainer=torchrun",
                "trainer.accelerator=cpu",
                "trainer.sync_batchnorm=false",
                *overrides,
            ]
            with open(log_path, "w") as log:
                self.agents.append(
                    subprocess.Popen(command, cwd=REPO, env=_environment(), stdout=log, stderr=log)
                )

    def wait(self, timeout: float = RUN_TIMEOUT) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            return [agent.wait(max(1.0, deadline - time.monotonic())) for agent in self.agents]
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL both nodes: the agents and every process they started."""
        running = [agent for agent in self.agents if agent.poll() is None]
        for pid in [pid for agent in running for pid in _descendants(agent.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for agent in running:
            agent.kill()
            agent.wait()

    def outputs(self) -> list[str]:
        return [log.read_text() for log in self.logs]


def _run_ddp_sim(data_dir: Path, run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "frgan.train",
            *_train_overrides(data_dir, run_dir, "trainer=ddp_sim"),
        ],
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def _metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(checkpoint)["state_dict"]


def _assert_written_by_rank_zero_only(run_dir: Path, outputs: list[str]) -> None:
    """One process printed the run folder and the config; the log file, wandb run and
    checkpoints are rank 0's alone."""
    assert sum("Run folder:" in out for out in outputs) == 1, "rank 0 alone reports the folder"
    assert sum("CONFIG" in out for out in outputs) == 1, "rank 0 alone prints the config"
    log = (run_dir / "train.log").read_text()
    assert log.count("model: frgan.models.ForecastGAN") == 1, "rank 1 wrote the run's log"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_torchrun_two_nodes_fit_test_like_ddp_sim(tiny_data_dir, tmp_path):
    two_nodes_run, sim_run = tmp_path / "torchrun", tmp_path / "ddp_sim"
    nodes = TwoNodes(tmp_path, _train_overrides(tiny_data_dir, two_nodes_run))
    statuses = nodes.wait()
    outputs = nodes.outputs()
    assert statuses == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert all("GLOBAL_RANK: " in out and "MEMBER: " in out for out in outputs)
    _assert_written_by_rank_zero_only(two_nodes_run, outputs)

    sim = _run_ddp_sim(tiny_data_dir, sim_run)
    assert sim.returncode == 0, sim.stderr[-3000:]
    # the same seed, global batch and data: the same training, bit for bit
    two_nodes_rows, sim_rows = _metric_rows(two_nodes_run), _metric_rows(sim_run)
    assert any(row.get("test/psnr_moving") for row in two_nodes_rows), "the test stage ran"
    assert len(two_nodes_rows) == len(sim_rows)
    for two_nodes_row, sim_row in zip(two_nodes_rows, sim_rows, strict=True):
        # (ddp_sim's test row is stamped epoch 0, step 0: its launching process's trainer
        # never ran the training steps, which happened in the spawned processes)
        metrics = {k: v for k, v in two_nodes_row.items() if k not in ("epoch", "step")}
        assert metrics == {k: sim_row[k] for k in metrics}
    two_nodes_weights = _weights(two_nodes_run / "checkpoints" / "last.ckpt")
    sim_weights = _weights(sim_run / "checkpoints" / "last.ckpt")
    assert two_nodes_weights.keys() == sim_weights.keys()
    for name, value in two_nodes_weights.items():
        assert torch.equal(value, sim_weights[name]), name


@pytest.mark.slow
def test_torchrun_two_nodes_killed_then_resumed(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    long_run = ["test=false", "callbacks.periodic_checkpoint.every_n_train_steps=2"]
    nodes = TwoNodes(
        tmp_path, _train_overrides(tiny_data_dir, run_dir, *long_run, "trainer.max_epochs=40")
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        wait_for(last, *nodes.agents, timeout=RUN_TIMEOUT, poll=0.5)
    finally:
        nodes.kill()  # both nodes lost at once, no time to save anything
    saved = read_checkpoint(last)
    assert 0 < saved["global_step"] < 40 * 3 * 2, "last.ckpt was written mid-run"

    until = f"trainer.max_epochs={saved['epoch'] + 2}"
    resumed = TwoNodes(
        tmp_path, _train_overrides(tiny_data_dir, run_dir, *long_run, until, "ckpt_path=auto")
    )
    statuses = resumed.wait()
    outputs = resumed.outputs()
    assert statuses == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    final = read_checkpoint(last)
    assert final["global_step"] > saved["global_step"]
    assert final["epoch"] == saved["epoch"] + 1
    assert "Run folder:" in "".join(outputs)


def _sweep_command(data_dir: Path, sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "frgan.train",
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.launcher.timeout_min=30",
        f"paths.data_dir={data_dir}",
        *TINY_DATA,
        *TINY_RUN,
        "logger=default",
        "seed=1",
        *overrides,
    ]


@pytest.mark.slow
def test_submitit_local_sweep_killed_then_resumed_through_fit_and_test(tiny_data_dir, tmp_path):
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher", reason="the `slurm` extra is not installed"
    )
    sweep_dir = tmp_path / "sweep"
    long_run = ["callbacks.periodic_checkpoint.every_n_train_steps=2"]
    with open(tmp_path / "killed.log", "w") as log, open(tmp_path / "killed.err", "w") as err:
        launcher = subprocess.Popen(
            _sweep_command(tiny_data_dir, sweep_dir, *long_run, "trainer.max_epochs=40"),
            cwd=REPO,
            env=_environment(),
            stdout=log,
            stderr=err,
        )
    last = sweep_dir / "0" / "checkpoints" / "last.ckpt"
    try:
        wait_for(last, launcher, timeout=RUN_TIMEOUT, poll=0.5)
        # the job's own process (submitit's local controller starts it): killed like the OOM
        # killer or a lost node would
        jobs = [pid for pid in _descendants(launcher.pid) if b"_submit" in _command_line(pid)]
        assert jobs, "the job's process was not found"
        for pid in jobs:
            os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=RUN_TIMEOUT)
    finally:
        if launcher.poll() is None:
            for pid in _descendants(launcher.pid):
                os.kill(pid, signal.SIGKILL)
            launcher.kill()
        launcher.wait()
    stderr = (tmp_path / "killed.err").read_text()
    assert launcher.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "ckpt_path=auto" in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr
    saved = read_checkpoint(last)

    until = f"trainer.max_epochs={saved['epoch'] + 2}"
    finish = subprocess.run(
        _sweep_command(tiny_data_dir, sweep_dir, *long_run, until, "ckpt_path=auto"),
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert finish.returncode == 0, finish.stderr[-3000:]
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("| ok |") == 1, summary
    resumed = read_checkpoint(last)
    assert resumed["global_step"] > saved["global_step"]
    assert resumed["epoch"] == saved["epoch"] + 1
    job_dir = sweep_dir / "0"
    assert "resuming from" in (job_dir / "train.log").read_text()
    assert "test/psnr_moving" in (job_dir / "csv" / "metrics.csv").read_text().splitlines()[0]


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
