"""The resolvers qtrain's configs use; registered when `qtrain` is imported.

- `${direction:${objective}}`: `maximize` or `minimize` for a metric (qtrain.objective).
- `${monitor_mode:${trainer.monitor}}`: `max` or `min`, the same rule.
- `${len:${dataset.frequencies}}`: the length of a list (a model sized by its data).
- `${unique:}`: 6 random hex digits, the same wherever one config reads it: run
  directories started in the same second, on any host, differ.
"""

import secrets

from omegaconf import OmegaConf

from qtrain.objective import direction, monitor_mode

OmegaConf.register_resolver("direction", direction, replace=True)
OmegaConf.register_resolver("monitor_mode", monitor_mode, replace=True)
OmegaConf.register_resolver("len", len, replace=True)
OmegaConf.register_resolver("unique", lambda: secrets.token_hex(3), use_cache=True, replace=True)
