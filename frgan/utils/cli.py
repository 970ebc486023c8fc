"""Report user errors from an entry point as one message instead of a traceback."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from hydra.errors import InstantiationException

from frgan.errors import FRGANError

log = logging.getLogger("frgan")

USER_ERRORS = (FRGANError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def _user_error(exc: BaseException) -> BaseException | None:
    """The user-facing error behind `exc` (Hydra wraps errors raised while building objects)."""
    while exc is not None:
        if isinstance(exc, USER_ERRORS) and not isinstance(exc, InstantiationException):
            return exc
        exc = exc.__cause__
    return None


def report_user_errors(task: Callable) -> Callable:
    """Wrap a Hydra task: a user error prints `error: <message>` and exits with status 2.

    Set FRGAN_DEBUG=1 to get the full traceback instead.
    """

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as exc:
            user_error = _user_error(exc)
            if user_error is None or os.environ.get("FRGAN_DEBUG"):
                raise
            log.error("%s", user_error)
            print(f"error: {user_error}", file=sys.stderr)
            sys.exit(2)

    return wrapped
