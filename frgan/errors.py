"""Errors that mean "the input or the config is wrong", reported as one clear message."""

WORKER_PREFIX = "Caught "
WORKER_TRACEBACK = "\nOriginal Traceback"


class FRGANError(Exception):
    """Bad input or configuration; the message says what was wrong and what to do.

    Raised in a DataLoader worker, the error is rebuilt in the main process from a message
    holding the worker's whole traceback (torch's ExceptionWrapper); the constructor keeps only
    the original one-line message, so the error still reads as one line.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_original_message(args[0], type(self)),)
        super().__init__(*args)


def _original_message(message: str, error_type: type) -> str:
    """The message of `error_type` raised in a DataLoader worker, or `message` unchanged."""
    if not (message.startswith(WORKER_PREFIX) and WORKER_TRACEBACK in message):
        return message
    marker = f"{error_type.__module__}.{error_type.__qualname__}: "
    _, found, original = message.rpartition(marker)
    return original.strip() if found else message


class ConfigError(FRGANError, ValueError):
    """An invalid config value; the message names the key and the valid values."""
