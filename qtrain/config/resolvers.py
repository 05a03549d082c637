"""The resolvers conf/ uses, registered when `qtrain` is imported: `${direction:task,metric}`
(maximize/minimize) and `${monitor_mode:task,metric}` (max/min) as the task says;
`${len:list}`; `${unique:}` (6 hex digits, the same wherever one config reads them: run
folders started in the same second differ); `${callback_targets:}` (TrustedCallbacks);
`${rank_zero:value,otherwise}` (`otherwise` in torchrun's ranks other than 0, which write
no run record or log: the run sends them rank 0's folder); `${quantum_backends:}` (help)."""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

from qtrain.config.targets import callback_targets
from qtrain.quantum import backends


def task_rule(name: str):
    """qtrain.tasks' `direction` or `monitor_mode`; torch loads when a config resolves it."""

    def resolve(task_target: str, metric: str) -> str:
        from qtrain import tasks

        return getattr(tasks, name)(task_target, metric)

    return resolve


def rank_zero(value, otherwise):
    return value if int(os.environ.get("RANK", "0")) == 0 else otherwise


OmegaConf.register_resolver("direction", task_rule("direction"), replace=True)
OmegaConf.register_resolver("monitor_mode", task_rule("monitor_mode"), replace=True)
OmegaConf.register_resolver("len", len, replace=True)
OmegaConf.register_resolver("unique", lambda: secrets.token_hex(3), use_cache=True, replace=True)
OmegaConf.register_resolver("callback_targets", callback_targets, replace=True)
OmegaConf.register_resolver("rank_zero", rank_zero, replace=True)
OmegaConf.register_resolver("quantum_backends", backends.summary, replace=True)
