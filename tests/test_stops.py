"""SIGTERM / SIGINT sent to the whole process group (as schedulers and Ctrl-C send them,
DataLoader and pool workers included) end every entry point with one line, exit status
128 + signal and no traceback; a fit saves last.ckpt and resumes from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_DATA, TINY_RUN, wait_for

from frgan.utils.checkpoint_io import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
MARKER = Path(__file__).resolve().parent / "phase_marker.py"
ENV = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A command in its own session (process group), its output in `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(
            args, cwd=REPO, env=ENV, stdout=out, stderr=out, start_new_session=True
        )


def stop_group(process: subprocess.Popen, sig: int, timeout: float = 120.0) -> int:
    try:
        os.killpg(process.pid, sig)
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def stop_once_started(args: list[str], tmp_path: Path, delay: float) -> tuple[int, Path]:
    """Run a command with hydra.run.dir=<tmp_path>/run, send SIGTERM to its process group
    `delay` seconds after its run folder is made; (exit status, its log)."""
    log = tmp_path / "out.log"
    process = start([*args, f"hydra.run.dir={tmp_path / 'run'}"], log)
    wait_for(tmp_path / "run" / ".hydra" / "config.yaml", process)
    time.sleep(delay)
    return stop_group(process, signal.SIGTERM), log


def stop_while_forecasting(module: str, args: list[str], tmp_path: Path) -> tuple[int, Path]:
    """Run `python -m module args` through the phase marker and send SIGTERM to its process
    group once it forecasts (tiny runs finish in a second: a fixed delay could miss them)."""
    log, phases = tmp_path / "out.log", tmp_path / "phases"
    phases.mkdir()
    command = [sys.executable, str(MARKER), str(phases), module, *args]
    process = start([*command, f"hydra.run.dir={tmp_path / 'run'}"], log)
    wait_for(phases / "forecast", process)
    return stop_group(process, signal.SIGTERM), log


def assert_clean_stop(status: int, log: Path, sig: int, hint: str) -> None:
    output = log.read_text()
    name = signal.Signals(sig).name
    assert status == 128 + sig, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "DataLoader worker" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if "stopped by" in line]
    assert lines == [f"stopped by {name}; {hint}" if hint else f"stopped by {name}"], output[-3000:]


def train_command(run_dir: Path, data_dir: Path, phases: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, str(MARKER), str(phases), "frgan.train",
        f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
        *TINY_DATA, *TINY_RUN, "data.num_workers=2", "trainer.max_epochs=50",
        "callbacks.periodic_checkpoint.every_n_train_steps=2", *overrides,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "sig", "overrides"),
    [
        ("train", signal.SIGTERM, []),
        pytest.param("train", signal.SIGINT, [], marks=pytest.mark.slow),
        pytest.param("validate", signal.SIGTERM, ["trainer.limit_val_batches=4"], marks=pytest.mark.slow),
        pytest.param("test", signal.SIGTERM, ["trainer.max_epochs=1", "trainer.limit_test_batches=4"], marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_a_stop_sent_to_the_process_group_ends_a_fit_cleanly(
    tiny_data_dir, tmp_path, phase, sig, overrides
):
    run_dir, phases = tmp_path / "run", tmp_path / "phases"
    phases.mkdir()
    log = tmp_path / "out.log"
    process = start(train_command(run_dir, tiny_data_dir, phases, *overrides), log)
    wait_for(phases / phase, process)
    status = stop_group(process, sig)
    assert_clean_stop(status, log, sig, "resume with ckpt_path=last")
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)
    assert saved["global_step"] > 0
    if phase != "test":
        assert saved["epoch"] < 50, "saved when the signal arrived, not at the end"


def test_a_stop_sent_to_the_process_group_ends_prepare_cleanly(tiny_data_dir, tmp_path):
    """Prepare's pool workers die quietly; the finished shards are kept for the rerun."""
    args = [
        sys.executable, "-m", "frgan.prepare", f"paths.data_dir={tiny_data_dir}", *TINY_DATA,
        f"data.shard_dir={tmp_path / 'shards'}", "data.prepare.workers=2",
    ]  # fmt: skip
    # the pool's workers exist once the first temporary shard part is being written
    status, log = stop_once_started(args, tmp_path, delay=3.0)
    assert_clean_stop(
        status,
        log,
        signal.SIGTERM,
        "run the same command again to resume: finished shards are kept",
    )


@pytest.mark.slow
def test_a_stop_sent_to_the_process_group_ends_evaluate_cleanly(
    tiny_data_dir, finished_run, tmp_path
):
    args = [
        f"ckpt={finished_run}", f"paths.data_dir={tiny_data_dir}", *TINY_DATA,
        "data.num_workers=2", "evaluation=no_fvd", "evaluation.frames=9",
        "evaluation.progress=false",
    ]  # fmt: skip
    status, log = stop_while_forecasting("frgan.evaluate", args, tmp_path)
    assert_clean_stop(status, log, signal.SIGTERM, "no report was written; run it again")
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_a_stop_sent_to_the_process_group_ends_generate_cleanly(
    tiny_data_dir, finished_run, tmp_path
):
    take = sorted(p for p in (tiny_data_dir / "synthetic" / "raw").glob("s*/*/take*"))[0]
    args = [
        "progress=false", f"ckpt={finished_run}", f"source={take / 'img_0000.jpg'}",
        f"driver={take}", f"out={tmp_path / 'out'}",
    ]  # fmt: skip
    status, log = stop_while_forecasting("frgan.generate", args, tmp_path)
    assert_clean_stop(status, log, signal.SIGTERM, "")


def test_a_stop_that_arrives_inside_a_finalizer_still_stops_after_it():
    """A SIGTERM during a video writer's __del__ (imageio closing its file at garbage
    collection) raised Stopped there, where Python prints "Exception ignored" and drops it: the
    stop was lost and generate ran on."""
    import gc

    from frgan.utils.stops import Stopped, stop_on_signals

    finalized, dropped = [], []

    class ClosesOnCollection:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(100_000))  # the handler runs here, inside the finalizer
            finalized.append(True)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = dropped.append
    try:
        with pytest.raises(Stopped), stop_on_signals() as record:
            writer = ClosesOnCollection()
            writer.cycle = writer  # freed by the collector, as the writer was
            del writer
            gc.collect()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        sys.unraisablehook = previous_hook
    assert finalized == [True] and not dropped
    assert record.signum == signal.SIGTERM


def _pool_worker_with_a_busy_thread():
    import threading

    from frgan.utils.stops import exit_quietly_on_stop

    exit_quietly_on_stop()
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    # the kernel must hand SIGTERM to the other thread, as it did to MediaPipe's in a
    # data=videos prepare whose pool then never terminated
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])


def test_a_pool_worker_ends_on_sigterm_whichever_thread_receives_it():
    import multiprocessing
    import threading

    pool = multiprocessing.get_context("fork").Pool(1, initializer=_pool_worker_with_a_busy_thread)
    assert pool.apply(os.getpid) > 0
    pool.apply_async(time.sleep, (60,))  # a worker busy in a long task, as landmarks are
    time.sleep(1)
    closing = threading.Thread(target=pool.terminate, daemon=True)
    closing.start()
    closing.join(timeout=20)
    assert not closing.is_alive(), "the pool's terminate() waited for a worker that never ended"


def test_an_entry_point_that_returns_with_a_loaders_workers_alive_exits():
    """frgan.evaluate returned with its DataLoader's workers still running: they ignore SIGTERM
    (stops are the main process's to handle), which is all multiprocessing sends them at exit,
    so the interpreter waited for them forever."""
    script = (
        "import multiprocessing, signal, time\n"
        "from frgan.utils.cli import report_user_errors\n"
        "def worker():\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    time.sleep(600)\n"
        "@report_user_errors\n"
        "def task():\n"
        "    multiprocessing.Process(target=worker, daemon=True).start()\n"
        "    time.sleep(0.5)\n"
        "    print('done', flush=True)\n"
        "task()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr


def test_the_test_suite_exits_with_a_loaders_workers_alive(tmp_path):
    """A test left a DataLoader's persistent workers running (they ignore SIGTERM, as the
    project's loaders' do): pytest finished every test and then waited for them forever."""
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('suite', {str(REPO / 'tests' / 'conftest.py')!r})\n"
        "suite = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(suite)\n"
        "pytest_sessionfinish = suite.pytest_sessionfinish\n"
    )
    (tmp_path / "test_leaves_workers.py").write_text(
        "from torch.utils.data import DataLoader\n"
        "from frgan.utils.stops import ignore_stop_signals\n"
        "LOADERS = []\n"
        "def test_reads_once():\n"
        "    loader = DataLoader(list(range(8)), batch_size=2, num_workers=2,\n"
        "                        persistent_workers=True, worker_init_fn=ignore_stop_signals)\n"
        "    assert len(list(loader)) == 4\n"
        "    LOADERS.append((loader, iter(loader)))  # alive at exit, workers running\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
