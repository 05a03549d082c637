"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

__version__ = "0.1.0"
