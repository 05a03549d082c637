"""The run directory's files: metrics.json, history.csv, report.txt and plots/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.metrics import ConfusionMatrixDisplay

from qtrain.files import atomic_write


def write_metrics(run_dir: Path, metrics: dict, stages: list[dict]) -> None:
    with atomic_write(run_dir / "metrics.json", "w") as f:
        f.write(json.dumps({**metrics, "stages": stages}, indent=2) + "\n")


def write_history(run_dir: Path, history: list[dict]) -> None:
    if not history:
        return
    columns = list(dict.fromkeys(key for row in history for key in row))
    with atomic_write(run_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def write_report(run_dir: Path, metrics: dict, details: str) -> None:
    """report.txt: the test metrics, then `details` (e.g. the per-class table)."""
    lines = ["qtrain test report", ""]
    lines += [f"{name:<24}{value:.4f}" for name, value in metrics.items() if isinstance(value, float)]
    with atomic_write(run_dir / "report.txt", "w") as f:
        f.write("\n".join(lines) + "\n" + (f"\n{details}" if details else ""))


def plot_confusion(run_dir: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    size = max(5, 0.5 * len(class_names))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(ax=ax, colorbar=False, xticks_rotation=45)
    ax.set_title("confusion matrix (test)")
    _save_figure(fig, run_dir / "plots" / "confusion_matrix.png")


def plot_learning_curves(run_dir: Path, history: list[dict], score: str) -> None:
    """Loss and the task's score (acc, mse) of train and val per epoch, and the lr."""
    if not history:
        return
    x = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, ("loss", score)):
        for split in ("train", "val"):
            ax.plot(x, [row[f"{split}/{metric}"] for row in history], marker=".", label=split)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.legend()
    axes[2].plot(x, [row["lr"] for row in history], marker=".")
    axes[2].set(xlabel="epoch", ylabel="lr", title="learning rate (end of epoch)", yscale="log")
    for boundary in [i for i in range(1, len(history)) if history[i]["stage"] != history[i - 1]["stage"]]:
        for ax in axes:
            ax.axvline(boundary + 0.5, color="grey", linestyle=":")
    _save_figure(fig, run_dir / "plots" / "learning_curves.png")


def plot_traces(run_dir: Path, predicted: np.ndarray, target: np.ndarray, samples: int = 4) -> None:
    """Predicted against target over time for the first test samples."""
    shown = min(samples, len(target))
    fig, axes = plt.subplots(shown, 1, figsize=(10, 2.2 * shown), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(target[i], label="target", linewidth=1.5)
        ax.plot(predicted[i], label="predicted", linewidth=1.0, linestyle="--")
        ax.set(ylabel=f"sample {i}")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set(xlabel="time step")
    fig.suptitle("predicted vs target (test)")
    _save_figure(fig, run_dir / "plots" / "predicted_vs_target.png")


def plot_error_histogram(run_dir: Path, error: np.ndarray) -> None:
    """The distribution of prediction errors (predicted - target) over every test value."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(error.ravel(), bins=60)
    ax.set(xlabel="predicted - target", ylabel="count", title="prediction error (test)")
    _save_figure(fig, run_dir / "plots" / "error_histogram.png")


def plot_predictions(path: Path, files: list[Path], probs, class_names: list[str]) -> None:
    """A grid of images, each titled with its predicted class and that class's probability."""
    columns = min(4, len(files))
    rows = -(-len(files) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, file, row in zip(axes.flat, files, probs):
        with Image.open(file) as image:
            ax.imshow(image.convert("RGB"))
        best = int(row.argmax())
        ax.set_title(f"{class_names[best]} ({float(row[best]):.2f})\n{file.name}", fontsize=8)
    fig.suptitle("predictions")
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
