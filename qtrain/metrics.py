"""Classification metrics from predicted and true labels (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score, precision_score, recall_score


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
