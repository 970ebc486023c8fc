"""Report user errors from an entry point as one line `error: ...` and exit status 2.

Two layers: `report_user_errors` wraps the task (errors raised while the job runs), and
`run_hydra_app` wraps the `hydra.main` entry point itself, for Hydra's own errors, which are
raised while the config is composed, before the task runs (an override that does not parse, a
key that is not in the config, an unknown group option). Set FRGAN_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import builtins
import errno
import functools
import logging
import os
import pydoc
import re
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf.errors import OmegaConfBaseException
from torch.multiprocessing import ProcessRaisedException

from frgan.errors import FRGANError
from frgan.utils.ranks import is_global_zero
from frgan.utils.stops import end_daemon_workers, stop_on_signals, stop_signal_of

log = logging.getLogger("frgan")

USER_ERRORS = (FRGANError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)
COMPOSITION_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)
# a file or folder that cannot be written: the user can fix it (space, permissions, the path)
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)
EXIT_USER_ERROR = 2
# a job of a sweep ended without a result (killed): not the user's input, but not finished
EXIT_JOB_LOST = 1


def user_error_message(exc: BaseException) -> str | None:
    """The message of the user-facing error behind `exc` (Hydra wraps errors raised while
    building objects; a spawned DDP process sends only its traceback's text)."""
    while exc is not None:
        if isinstance(exc, OSError) and _is_folder_mistake(exc):
            return describe_os_error(exc)
        if isinstance(exc, USER_ERRORS) and not isinstance(exc, InstantiationException):
            return str(exc)
        if isinstance(exc, ProcessRaisedException):
            return _user_error_in_traceback(str(exc))
        exc = exc.__cause__
    return None


def _is_folder_mistake(error: OSError) -> bool:
    """A file or folder that cannot be written or made, or a file where a folder must be."""
    return error.errno in WRITE_ERRNOS or (
        error.errno == errno.EEXIST
        and error.filename is not None
        and os.path.isfile(error.filename)
    )


def _user_error_in_traceback(text: str) -> str | None:
    """`module.ErrorClass: message` on the last line of a child process's traceback, when the
    class is a user error."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    match = re.match(r"^([\w.]+): (.+)$", lines[-1]) if lines else None
    if match is None:
        return None
    name, message = match.groups()
    error_class = pydoc.locate(name) or getattr(builtins, name, None)
    if isinstance(error_class, type) and issubclass(error_class, USER_ERRORS):
        return message
    return None


def describe_os_error(error: OSError, argv: list[str] | None = None) -> str:
    """`<path>: <reason>; <what to do>` for a file or folder that cannot be written or made,
    naming the setting on the command line (`argv`, default sys.argv) that chose the path."""
    path = error.filename or "a file"
    reason = error.strerror or str(error)
    key = folder_setting(path, sys.argv[1:] if argv is None else argv)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = f"free space on that disk, or set {key} to a folder on another disk"
    elif error.errno == errno.EROFS:
        todo = f"set {key} to a folder on a writable disk"
    elif error.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "a file stands where a folder is needed"
        todo = f"set {key} to a folder (it is made when missing)"
    else:
        todo = f"give this user access to it, or set {key} to a writable folder"
    return f"cannot write {path}: {reason}; {todo}"


# command-line settings that choose where files go, the most specific first
FOLDER_SETTINGS = ("out", "hydra.run.dir", "hydra.sweep.dir", "paths.output_dir", "paths.log_dir")


def folder_setting(path: str | os.PathLike, argv: list[str]) -> str:
    """The setting of `argv` whose folder holds, or lies on the way to, `path`;
    paths.log_dir (every default folder lies under it) when the command line sets none."""
    failed = os.path.abspath(path)
    given = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    for key in FOLDER_SETTINGS:
        value = given.get(key)
        if not value:
            continue
        folder = os.path.abspath(value.strip("'\""))
        if os.path.commonpath([failed, folder]) in (failed, folder):
            return key
    return "paths.log_dir"


def _debugging() -> bool:
    return bool(os.environ.get("FRGAN_DEBUG"))


def one_line(text: str) -> str:
    """A message as one line: its non-empty lines joined."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def report(message: str) -> None:
    """Print `error: message` once: on stderr, and in the run's log files (not its console)."""
    message = one_line(message)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    if is_global_zero():
        print(f"error: {message}", file=sys.stderr, flush=True)


def report_stop(signum: int, hint: str = "") -> NoReturn:
    """One line `stopped by SIGTERM; <hint>` (stderr and the run's log files), then exit with
    status 128 + the signal's number, as a process killed by it would report."""
    message = f"stopped by {signal.Signals(signum).name}" + (f"; {hint}" if hint else "")
    record = log.makeRecord(log.name, logging.WARNING, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    if is_global_zero():
        print(message, file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def report_user_errors(
    task: Callable | None = None, *, stop_hint: str | Callable[..., str] = ""
) -> Callable:
    """Wrap a Hydra task: a user error prints `error: <message>` and exits with status 2;
    SIGTERM or SIGINT (to this process or its whole group) prints `stopped by <signal>;
    <stop_hint>` and exits with status 128 + the signal's number, without a traceback.

    Use as `@report_user_errors` or `@report_user_errors(stop_hint=...)`, the hint a string or
    a function of the task's arguments (the config) returning one.
    """
    if task is None:
        return functools.partial(report_user_errors, stop_hint=stop_hint)

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        with stop_on_signals() as stop:
            try:
                result = task(*args, **kwargs)
                # a loader's workers still alive ignore the SIGTERM multiprocessing ends them
                # with at exit: the interpreter would wait for them forever
                end_daemon_workers()
                return result
            except BaseException as exc:
                end_daemon_workers()
                # an error after a stop signal (e.g. a worker killed by it) is the stop;
                # an exit with a status is not (Lightning's SIGTERMException exits without one)
                signum = stop_signal_of(exc) or stop.signum
                exiting = isinstance(exc, SystemExit) and exc.code is not None
                if signum is not None and not exiting and not _debugging():
                    hint = stop_hint(*args, **kwargs) if callable(stop_hint) else stop_hint
                    report_stop(signum, hint)
                if not isinstance(exc, Exception):
                    raise
                user_error = user_error_message(exc)
                if user_error is None or _debugging():
                    raise
                report(user_error)
                sys.exit(EXIT_USER_ERROR)

    return wrapped


def run_hydra_app(main: Callable[[], object]) -> None:
    """Run a `hydra.main` entry point; Hydra's composition errors become one line + exit 2.

    Hydra prints its own errors and exits with status 1 unless HYDRA_FULL_ERROR is set, in
    which case it raises them: that is set here while the app runs, so they can be reported
    like every other config mistake. A HYDRA_FULL_ERROR set by the user keeps Hydra's output.
    """
    if os.environ.get("HYDRA_FULL_ERROR") or _debugging():
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except COMPOSITION_ERRORS as error:
        message = str(error).split("Config search path")[0]
        cause = error.__cause__
        if isinstance(cause, OmegaConfBaseException):
            message += f" ({str(cause).splitlines()[0]})"
        report(message)
        sys.exit(EXIT_USER_ERROR)
    except OSError as error:
        # raised before the task runs, e.g. Hydra creating the run folder
        if not _is_folder_mistake(error):
            raise
        report(describe_os_error(error))
        sys.exit(EXIT_USER_ERROR)
    except Exception as error:
        message = lost_job_message(error)
        if message is None:
            raise
        report(message)
        sys.exit(EXIT_JOB_LOST)
    finally:
        del os.environ["HYDRA_FULL_ERROR"]


def lost_job_message(error: BaseException) -> str | None:
    """What to do about a sweep job that Hydra's submitit launcher (SLURM or local) saw end
    without a result: killed, out of memory, its node lost. None for any other error."""
    # submitit.core.utils.UncompletedJobError, named rather than imported: the `slurm` extra
    # is optional
    if type(error).__name__ != "UncompletedJobError":
        return None
    lines = str(error).splitlines()
    return (
        f"a job of the sweep ended without a result ({' '.join(lines[:2])}); run the same "
        "command again with ckpt_path=auto to resume the unfinished jobs from their last.ckpt"
    )
