"""Data pipeline: raw MUG-layout takes -> shards (frgan.prepare) -> batches (FRGANDataModule)."""

__all__ = ["FRGANDataModule"]


def __getattr__(name: str):
    # Imported on first use: the preparation workers import frgan.data.* without needing Lightning.
    if name == "FRGANDataModule":
        from frgan.data.datamodule import FRGANDataModule

        return FRGANDataModule
    raise AttributeError(f"module 'frgan.data' has no attribute '{name}'")
