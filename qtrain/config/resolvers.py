"""The resolvers qtrain's configs use; registered when `qtrain` is imported.

- `${direction:${task._target_},${objective}}`: `maximize` or `minimize` for a metric,
  as the task says (qtrain.tasks.Task.directions), so a sweep and its MLflow parent run
  follow whatever metric `objective` names.
- `${monitor_mode:${task._target_},${trainer.monitor}}`: `max` or `min`, the same rule.
- `${len:${dataset.frequencies}}`: the length of a list (a model sized by its data).
- `${unique:}`: 6 random hex digits, the same wherever one config reads it: run
  directories started in the same second, on any host, differ.
- `${callback_targets:}`: the `_target_` keys of `hydra.callbacks` (qtrain.config.targets).
- `${rank_zero:<value>,<otherwise>}`: the value in the process of rank 0 (or outside
  torchrun), `otherwise` in the others: torchrun starts every rank as `python -m qtrain ...`, and only rank 0
  writes the run's record and log (the run sends its folder to the other ranks).
- `${quantum_backends:}`: the registered backends, for the help text.
"""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

from qtrain.config.targets import callback_targets
from qtrain.errors import ConfigError
from qtrain.quantum import backends


def direction(task_target: str, metric: str) -> str:
    from qtrain.tasks import task_class  # torch loads when a config resolves, not when qtrain is imported

    task = task_class(task_target)
    mode = task.mode(metric)
    if mode is None:
        reported = sorted({f"test/{name}" for name in task.directions} | {f"val/{name}_best" for name in task.best})
        raise ConfigError("objective", metric, f"not a metric of this run; its task reports {', '.join(reported)}")
    return "maximize" if mode == "max" else "minimize"


def monitor_mode(task_target: str, metric: str) -> str:
    from qtrain.tasks import task_class

    task = task_class(task_target)
    if metric not in task.monitors():
        raise ConfigError("trainer.monitor", metric, f"use one of {', '.join(task.monitors())}")
    return task.mode(metric)


def rank_zero(value, otherwise):
    return value if int(os.environ.get("RANK", "0")) == 0 else otherwise


OmegaConf.register_resolver("direction", direction, replace=True)
OmegaConf.register_resolver("monitor_mode", monitor_mode, replace=True)
OmegaConf.register_resolver("len", len, replace=True)
OmegaConf.register_resolver("unique", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_resolver("callback_targets", callback_targets, replace=True)
OmegaConf.register_resolver("rank_zero", rank_zero, replace=True)
OmegaConf.register_resolver("quantum_backends", backends.summary, replace=True)
