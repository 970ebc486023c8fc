"""Lightning callbacks of FRGAN."""

from frgan.callbacks.samples import SampleMedia

__all__ = ["SampleMedia"]
