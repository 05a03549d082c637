"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

__version__ = "0.1.0"

from qtrain import objective as _objective  # noqa: F401  (registers ${direction:...} for the configs)
