"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

__version__ = "0.1.0"

# Packages whose callables a config's `_target_` may name (Hydra 1.4 refuses others).
TRUSTED_TARGETS = ("qtrain.*", "torch.*", "torchvision.*", "timm.*")

from qtrain import resolvers as _resolvers  # noqa: F401  (${direction:...}, ${len:...} for the configs)
