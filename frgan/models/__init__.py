"""Networks and LightningModules of FRGAN."""

from frgan.models.checkpoints import load_model
from frgan.models.clip_critic import ClipCritic
from frgan.models.critic import Critic
from frgan.models.forecast_gan import ForecastGAN
from frgan.models.gan import GANModule
from frgan.models.generator import Forecast, Generator
from frgan.models.presets import PRESETS, WidthPreset, architecture, supported_image_sizes
from frgan.models.refine_gan import RefineGAN
from frgan.models.refine_generator import Refined, RefineGenerator

__all__ = [
    "PRESETS",
    "RefineGAN",
    "RefineGenerator",
    "Refined",
    "ClipCritic",
    "Critic",
    "Forecast",
    "ForecastGAN",
    "GANModule",
    "Generator",
    "WidthPreset",
    "architecture",
    "load_model",
    "supported_image_sizes",
]
