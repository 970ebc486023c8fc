"""Lightning callbacks of FRGAN."""

from frgan.callbacks.samples import SampleMedia
from frgan.callbacks.timing import RunTimer

__all__ = ["RunTimer", "SampleMedia"]
