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
from sklearn.metrics import (
    classification_report,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)

from qtrain import reports
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
        "f1_macro": "max",  # the test report's (classification_metrics)
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
        extra = classification_metrics(predicted, target, "test")
        per_class = per_class_report(predicted, target, data.class_names)
        reports.write_report(run_dir, scores | extra, "per class (test split)\n" + per_class)
        matrix = confusion(predicted, target, len(data.class_names))
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
        return regression_metrics(predicted.numpy(), target.numpy(), prefix)

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


def direction(task_target: str, metric: str) -> str:
    """`maximize` or `minimize` a metric as a sweep objective (`${direction:...}`)."""
    task = task_class(task_target)
    mode = task.mode(metric)
    if mode is None:
        reported = sorted({f"test/{name}" for name in task.directions} | {f"val/{name}_best" for name in task.best})
        raise ConfigError("objective", metric, f"not a metric of this run; its task reports {', '.join(reported)}")
    return "maximize" if mode == "max" else "minimize"


def monitor_mode(task_target: str, metric: str) -> str:
    """`max` or `min` for the metric the trainer monitors (`${monitor_mode:...}`)."""
    task = task_class(task_target)
    if metric not in task.monitors():
        raise ConfigError("trainer.monitor", metric, f"use one of {', '.join(task.monitors())}")
    return task.mode(metric)


# Metrics from predictions and targets, with scikit-learn.


def classification_metrics(predicted: np.ndarray, target: np.ndarray, prefix: str) -> dict[str, float]:
    """Macro-averaged F1, precision and recall as `<prefix>/f1_macro` etc."""
    kwargs = {"y_true": target, "y_pred": predicted, "average": "macro", "zero_division": 0}
    return {
        f"{prefix}/f1_macro": float(f1_score(**kwargs)),
        f"{prefix}/precision_macro": float(precision_score(**kwargs)),
        f"{prefix}/recall_macro": float(recall_score(**kwargs)),
    }


def per_class_report(predicted: np.ndarray, target: np.ndarray, class_names: list[str]) -> str:
    labels = list(range(len(class_names)))
    return classification_report(target, predicted, labels=labels, target_names=class_names, digits=4, zero_division=0)


def confusion(predicted: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    return confusion_matrix(target, predicted, labels=list(range(num_classes)))


def regression_metrics(predicted: np.ndarray, target: np.ndarray, prefix: str) -> dict[str, float]:
    """Over every value (all samples and time steps): `<prefix>/mse`, `rmse`, `mae`,
    `corr` (Pearson), `r2` (1 - residual / total sum of squares) and `snr_db`
    (10 log10 of target power over error power)."""
    p, t = predicted.astype(np.float64).ravel(), target.astype(np.float64).ravel()
    mse = float(mean_squared_error(t, p))
    error_power = float(np.sum((t - p) ** 2))
    constant = np.std(p) == 0 or np.std(t) == 0  # Pearson's r is undefined
    return {
        f"{prefix}/mse": mse,
        f"{prefix}/rmse": float(np.sqrt(mse)),
        f"{prefix}/mae": float(mean_absolute_error(t, p)),
        f"{prefix}/corr": 0.0 if constant else float(np.corrcoef(p, t)[0, 1]),
        f"{prefix}/r2": float(r2_score(t, p)),
        f"{prefix}/snr_db": float(10 * np.log10(np.sum(t**2) / error_power)) if error_power > 0 else float("inf"),
    }
