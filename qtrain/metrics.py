"""Metrics from predictions and targets: classification (labels) and regression (values),
with scikit-learn."""

from __future__ import annotations

import numpy as np
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
