"""Error classes of the data package.

Everything raised on purpose by frgan.data derives from `DataError`, so a preparation run can
tell "this take is unusable" (skip it, record the reason) from a programming error.
`LandmarkSourceUnavailable` is the exception to that rule of thumb: it means the backend cannot
run on this machine at all (missing package or weights), so a run should stop, not skip.
"""

from frgan.errors import FRGANError


class DataError(FRGANError):
    """Base class of the data package's errors; the message says what was wrong and what to do."""


class LandmarkSourceUnavailable(DataError):
    """A landmark backend cannot be used here: its package or its weight files are missing."""


class NoFaceFound(DataError):
    """No face was found where one is required (e.g. in the frame a crop box is taken from)."""


class GroundTruthError(DataError):
    """A take's ground_truth.npz is missing, unreadable or does not match the take's frames."""


class CorruptShard(DataError):
    """A shard file fails its checksum or cannot be read."""
