"""The resolvers qtrain's configs use; registered when `qtrain` is imported.

- `${direction:${objective}}`: `maximize` or `minimize` for a metric (qtrain.objective).
- `${monitor_mode:${trainer.monitor}}`: `max` or `min`, the same rule.
- `${len:${dataset.frequencies}}`: the length of a list (a model sized by its data).
"""

from omegaconf import OmegaConf

from qtrain.objective import direction, monitor_mode

OmegaConf.register_resolver("direction", direction, replace=True)
OmegaConf.register_resolver("monitor_mode", monitor_mode, replace=True)
OmegaConf.register_resolver("len", len, replace=True)
