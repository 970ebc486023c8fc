"""Stopping cleanly on SIGTERM (a scheduler's stop, `kill`) and SIGINT (Ctrl-C).

Schedulers send the signal to the whole process group, DataLoader and pool workers included.
The workers ignore it (`ignore_stop_signals`, `exit_quietly_on_stop`), so the main process
alone decides how the run ends:
- outside a fit, the signal raises `Stopped` at once; the entry point prints one line and
  exits with status 128 + the signal's number (`stop_on_signals`, frgan/utils/cli.py);
- during a fit, `CheckpointOnInterrupt` turns it into a stop at the end of the current
  training (or validation) batch, saves `last.ckpt` (frgan/utils/interrupt.py), and the run
  exits the same way.
This module imports no more than the standard library: pool workers use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESEND_AFTER_S = 0.05  # a stop that arrives inside a finalizer is sent again this much later


class Stopped(BaseException):
    """A stop signal arrived. Not an Exception, so `except Exception` blocks let it through."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def stop_signal_of(error: BaseException) -> int | None:
    """The stop signal behind an error: a `Stopped`, or an error a stopped fit was tagged with
    (`CheckpointOnInterrupt` tags the error that ends it with the signal it received)."""
    while error is not None:
        # Lightning's stop on SIGTERM (pytorch_lightning is not imported by prepare's workers)
        if type(error).__name__ == "SIGTERMException" and not hasattr(error, "signum"):
            return signal.SIGTERM
        signum = getattr(error, "signum", None)
        if isinstance(signum, int):
            return signum
        error = error.__cause__ or error.__context__
    return None


def in_finalizer(frame) -> bool:
    """Whether a signal handler's interrupted frame runs inside an object's __del__ (an
    imageio writer closing its video file at garbage collection, say)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


class StopRecord:
    """Which stop signal the main process received first (None: none yet)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRecord]:
    """Within the block, SIGTERM and SIGINT raise `Stopped` in the main process (recorded in
    the yielded StopRecord) — after the finalizer, when one is running; the previous handlers
    come back afterwards."""
    record = StopRecord()
    main_pid = os.getpid()

    def stop(signum, frame):
        if os.getpid() != main_pid:
            # a child forked before it could set its own handlers (a DataLoader worker starting)
            os._exit(128 + signum)
        if record.signum is None:
            record.signum = signum
        if in_finalizer(frame):
            # an exception raised in __del__ is printed as "Exception ignored" and dropped, and
            # the stop with it: send the signal again once the finalizer is likely done
            resend = threading.Timer(RESEND_AFTER_S, os.kill, (main_pid, signum))
            resend.daemon = True
            resend.start()
            return
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield record
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """DataLoader `worker_init_fn`: the worker leaves SIGTERM/SIGINT to the main process, which
    stops it (it exits when its loader shuts down, or when the main process is gone)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def exit_quietly_on_stop() -> None:
    """For pool workers: a stop signal ends the worker without a traceback (the main process
    prints the one line). Not ignored: the pool terminates its workers with SIGTERM.

    The system's default action, not a Python handler: a Python handler runs only once the
    main thread is back in the interpreter, and a signal the kernel hands to another thread (a
    landmark model's) leaves a worker blocked on its task queue waiting forever, and the
    pool's terminate() with it."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def end_daemon_workers() -> None:
    """Kill the daemonic worker processes still running (DataLoader and pool workers) before
    the interpreter exits on an error or a stop: they ignore SIGTERM, which is all that
    multiprocessing sends them at exit before it waits for them."""
    import multiprocessing

    # torch reports a worker's end as an error from its SIGCHLD handler
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
            child.join(timeout=10)
