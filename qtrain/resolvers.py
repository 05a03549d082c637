"""The resolvers qtrain's configs use; registered when `qtrain` is imported.

- `${direction:${task._target_},${objective}}`: `maximize` or `minimize` for a metric,
  as the task says (qtrain.objective).
- `${monitor_mode:${task._target_},${trainer.monitor}}`: `max` or `min`, the same rule.
- `${len:${dataset.frequencies}}`: the length of a list (a model sized by its data).
- `${unique:}`: 6 random hex digits, the same wherever one config reads it: run
  directories started in the same second, on any host, differ.
- `${callback_targets:}`: the `_target_` keys of `hydra.callbacks`, unresolved and
  unbuilt, for qtrain.trusted_callbacks (a node cannot interpolate its parent).
"""

import secrets

from omegaconf import OmegaConf

from qtrain.objective import direction, monitor_mode


def _targets(tree: dict) -> dict:
    """The `_target_` keys of a raw config tree, where they are; the rest left out."""
    kept = {}
    for key, value in tree.items():
        if key == "_target_":
            kept[key] = value
        elif isinstance(value, dict) and (inner := _targets(value)):
            kept[key] = inner
    return kept


def callback_targets(_root_) -> dict:
    return _targets(OmegaConf.to_container(_root_.hydra.callbacks, resolve=False))


OmegaConf.register_resolver("direction", direction, replace=True)
OmegaConf.register_resolver("monitor_mode", monitor_mode, replace=True)
OmegaConf.register_resolver("len", len, replace=True)
OmegaConf.register_resolver("unique", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_resolver("callback_targets", callback_targets, replace=True)
