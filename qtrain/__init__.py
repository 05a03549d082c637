"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

__version__ = "0.1.0"

from qtrain.config import CONFIG_DIR, TRUSTED_TARGETS, compose
from qtrain.predict.api import train

__all__ = ["CONFIG_DIR", "TRUSTED_TARGETS", "compose", "train"]
