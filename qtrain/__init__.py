"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

__version__ = "0.1.0"

# Packages whose callables a config's `_target_` may name (Hydra 1.4 refuses others).
TRUSTED_TARGETS = ("qtrain.*", "torch.*", "torchvision.*", "timm.*")

from qtrain import objective as _objective  # noqa: F401  (registers ${direction:...} for the configs)
