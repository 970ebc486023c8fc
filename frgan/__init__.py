"""frgan: structure-driven image-to-video generation (FRGAN) with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
