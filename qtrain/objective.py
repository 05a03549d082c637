"""The objective: the metric a run returns to a sweeper, and which way is better.

Which way a metric is better is the task's (qtrain.tasks.Task.directions). The configs
ask through resolvers: `${direction:${task._target_},${objective}}` is `maximize` or
`minimize`, so a sweep and its MLflow parent run follow whatever metric `objective`
names; `${monitor_mode:${task._target_},${trainer.monitor}}` is `max` or `min`.
"""

from __future__ import annotations

from qtrain.errors import ConfigError


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


def objective(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise ConfigError("objective", name, f"not a metric of this run; it produced {', '.join(sorted(metrics))}")
    return metrics[name]
