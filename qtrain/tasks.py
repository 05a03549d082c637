"""The task: what a model's output means and how it is judged.

`task=classification` (the image datasets) or `task=regression` (`dataset=signal`
chooses it). A task gives the loss of one output, the score the training loop keeps
beside the loss, the validation metrics and which way each is better, and the test
report; the loop and the trainer ask it and never branch on the kind of task.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from qtrain import metrics, reports
from qtrain.errors import ConfigError


class Task:
    score: ClassVar[str]  # the training metric kept beside the loss (`train/<score>`), and per head
    # Every metric the task reports -> "max" or "min": the one rule for which way a metric is
    # better (trainer.monitor_mode, a sweep's direction, `val/<metric>_best`).
    directions: ClassVar[dict[str, str]]
    best: ClassVar[tuple[str, ...]]  # the validation metrics a monitor may follow; `val/<metric>_best` keeps each

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batch_score(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The score summed over the batch's samples (divided by the samples later)."""
        raise NotImplementedError

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """What evaluation keeps of an output: labels, or values."""
        raise NotImplementedError

    def metrics(self, predicted: torch.Tensor, target: torch.Tensor, prefix: str) -> dict[str, float]:
        """`<prefix>/<metric>` of a whole split's predictions (the loss aside)."""
        raise NotImplementedError

    def report(self, predicted: np.ndarray, target: np.ndarray, data, run_dir: Path, scores: dict) -> dict:
        """The test split's files (report.txt, plots/); returns metrics beyond `scores`."""
        raise NotImplementedError

    @classmethod
    def monitors(cls) -> list[str]:
        return [f"val/{name}" for name in cls.best]

    @classmethod
    def mode(cls, metric: str) -> str | None:
        """ "max" or "min" for a metric as a run names it (`val/acc`, `val/mse_best`,
        `test/quantum/f1_macro`); None for one the task does not report."""
        return cls.directions.get(metric.rsplit("/", 1)[-1].removesuffix("_best"))


class Classification(Task):
    score = "acc"
    directions: ClassVar = {
        "acc": "max",
        "loss": "min",
        "f1_macro": "max",  # the test report's (qtrain.metrics.classification_metrics)
        "precision_macro": "max",
        "recall_macro": "max",
    }
    best: ClassVar = ("acc", "loss")

    def __init__(self, label_smoothing: float = 0.0):
        if not 0 <= label_smoothing < 1:
            raise ConfigError("task.label_smoothing", label_smoothing, "must be in [0, 1)")
        self.label_smoothing = label_smoothing

    def loss(self, output, target):
        return F.cross_entropy(output.float(), target, label_smoothing=self.label_smoothing)

    def batch_score(self, output, target):
        return (output.argmax(1) == target).sum()

    def predict(self, output):
        return output.argmax(1)

    def metrics(self, predicted, target, prefix):
        return {f"{prefix}/acc": (predicted == target).float().mean().item()}

    def report(self, predicted, target, data, run_dir, scores):
        extra = metrics.classification_metrics(predicted, target, "test")
        per_class = metrics.per_class_report(predicted, target, data.class_names)
        reports.write_report(run_dir, scores | extra, "per class (test split)\n" + per_class)
        matrix = metrics.confusion(predicted, target, len(data.class_names))
        reports.plot_confusion(run_dir, matrix, data.class_names)
        return extra


REGRESSION_LOSSES = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
    "smooth_l1": F.smooth_l1_loss,
}


class Regression(Task):
    score = "mse"
    directions: ClassVar = {
        "mse": "min",
        "rmse": "min",
        "mae": "min",
        "corr": "max",
        "r2": "max",
        "snr_db": "max",
        "loss": "min",
    }
    best: ClassVar = tuple(directions)

    def __init__(self, loss: str = "mse", delta: float = 1.0):
        if loss not in REGRESSION_LOSSES:
            raise ConfigError("task.loss", loss, f"use one of {', '.join(REGRESSION_LOSSES)}")
        if delta <= 0:
            raise ConfigError("task.delta", delta, "must be > 0 (the huber / smooth_l1 threshold)")
        self.loss_name, self.delta = loss, delta

    def loss(self, output, target):
        function, output = REGRESSION_LOSSES[self.loss_name], output.float()
        if self.loss_name == "huber":
            return function(output, target, delta=self.delta)
        if self.loss_name == "smooth_l1":
            return function(output, target, beta=self.delta)
        return function(output, target)

    def batch_score(self, output, target):
        return (output.float() - target).square().flatten(1).mean(1).sum()

    def predict(self, output):
        return output.float()

    def metrics(self, predicted, target, prefix):
        return metrics.regression_metrics(predicted.numpy(), target.numpy(), prefix)

    def report(self, predicted, target, data, run_dir, scores):
        reports.write_report(run_dir, scores, "")
        reports.plot_traces(run_dir, predicted, target)
        reports.plot_error_histogram(run_dir, predicted - target)
        return {}


TASKS = {f"{task.__module__}.{task.__qualname__}": task for task in (Classification, Regression)}


def task_class(target: str) -> type[Task]:
    """The task a config's `task._target_` names."""
    if target not in TASKS:
        raise ConfigError("task._target_", target, f"use one of {', '.join(TASKS)}")
    return TASKS[target]
