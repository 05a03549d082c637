"""Optuna's own pictures of a study, as HTML (plotly, interactive) and PNG (matplotlib):
the optimization history, the parameter importances, the parallel coordinates."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import matplotlib
import optuna

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
from optuna import visualization
from optuna.visualization import matplotlib as static

log = logging.getLogger("qtrain")

PLOTS = {
    "optimization_history": (visualization.plot_optimization_history, static.plot_optimization_history),
    "param_importances": (visualization.plot_param_importances, static.plot_param_importances),
    "parallel_coordinate": (visualization.plot_parallel_coordinate, static.plot_parallel_coordinate),
}


def write_study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """The plots of `study` in `folder`; a plot the study cannot give yet (importances
    need two finished trials that differ) is left out with a line in the log."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (interactive, still) in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                interactive(study).write_html(folder / f"{name}.html", include_plotlyjs="cdn")
                axes = still(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            log.info("Optuna plot %s left out: %s", name, error)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        written += [folder / f"{name}.html", folder / f"{name}.png"]
    return written
