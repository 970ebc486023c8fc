"""Errors that mean "the input or the config is wrong", reported as one clear message."""


class FRGANError(Exception):
    """Bad input or configuration; the message says what was wrong and what to do."""


class ConfigError(FRGANError, ValueError):
    """An invalid config value; the message names the key and the valid values."""
