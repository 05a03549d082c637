"""The objective: the metric a run returns to a sweeper, and which way is better.

`${direction:${objective}}` in the configs resolves to `maximize` or `minimize`, so a
sweep and its MLflow parent run follow whatever metric `objective` names.
"""

from __future__ import annotations

from qtrain.errors import ConfigError

# Metrics where lower is better; every other metric (acc, f1, r2, corr, ...) is maximized.
LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae")


def direction(metric: str) -> str:
    name = metric.rsplit("/", 1)[-1].removesuffix("_best")
    return "minimize" if name.endswith(LOWER_IS_BETTER) else "maximize"


def monitor_mode(metric: str) -> str:
    """`min` or `max`: how `trainer.monitor` is compared (`${monitor_mode:...}`)."""
    return "min" if direction(metric) == "minimize" else "max"


def objective(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise ConfigError("objective", name, f"not a metric of this run; it produced {', '.join(sorted(metrics))}")
    return metrics[name]
