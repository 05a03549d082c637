"""qtrain: Hydra-composed experiments for hybrid quantum-classical deep learning."""

from pathlib import Path

__version__ = "0.1.0"

# The config groups. An absolute path: Hydra resolves a relative one against the module's
# package when started through the `qtrain` console script, where no `conf` package exists.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

from qtrain import config_schema as _config_schema  # noqa: F401  (schema/* in Hydra's ConfigStore)
from qtrain import resolvers as _resolvers  # noqa: F401  (${direction:...}, ${len:...} for the configs)
from qtrain.api import compose, train
from qtrain.targets import TRUSTED_TARGETS  # the callables a config's `_target_` may name

__all__ = ["CONFIG_DIR", "TRUSTED_TARGETS", "compose", "train"]
