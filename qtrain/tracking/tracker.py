"""The trackers a run reports to: `Tracker` tracks nothing (`tracking=none`) and is
what `MlflowTracker` and `TensorBoardTracker` fill in; `Trackers` reports to each of
the group's choices (`tracking=[mlflow,tensorboard]`)."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from pathlib import Path

import torch

from qtrain.errors import TrainingInterrupted, TrialPruned


class Tracker:
    @contextlib.contextmanager
    def track(self, config: dict, run_dir: Path) -> Iterator[Tracker]:
        """Open a tracked run around the block; it ends FINISHED, or FAILED if the block
        raises, or KILLED if it was interrupted (Ctrl-C, SIGTERM, a SLURM requeue) or its sweep's pruner
        stopped it (tagged `optuna.state=PRUNED`). `config`: the run's
        config as plain values (qtrain.config.RunConfig.values)."""
        self.begin(config, run_dir)
        try:
            yield self
        except TrialPruned as pruned:
            self.set_tags({"optuna.state": "PRUNED", "optuna.pruned_after_epoch": str(pruned.epoch)})
            self.end("KILLED")
            raise
        except (TrainingInterrupted, KeyboardInterrupt, SystemExit):  # SystemExit: submitit requeues the job
            self.end("KILLED")
            raise
        except BaseException:
            self.end("FAILED")
            raise
        self.end("FINISHED")

    def begin(self, config: dict, run_dir: Path) -> None:
        """Create the run, with the config as params and the run's tags."""

    def log_epoch(self, row: dict) -> None:
        """One history row (numbers become metrics at the row's global step)."""

    def log_model(self, model: torch.nn.Module, data) -> None:
        """The trained model; `data` gives an input example (its first test batch)."""

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        """The final metrics and the run directory's files."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags on the run (where the tracker has tags)."""

    def end(self, status: str) -> None:
        """Close the run with an MLflow status: FINISHED, FAILED or KILLED."""


class Trackers(Tracker):
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def _each(self, method: str, *args) -> None:
        for tracker in self.trackers:
            getattr(tracker, method)(*args)

    def begin(self, config, run_dir):
        self._each("begin", config, run_dir)

    def log_epoch(self, row):
        self._each("log_epoch", row)

    def log_model(self, model, data):
        self._each("log_model", model, data)

    def log_results(self, metrics, run_dir):
        self._each("log_results", metrics, run_dir)

    def set_tags(self, tags):
        self._each("set_tags", tags)

    def end(self, status):
        self._each("end", status)


def numbers_of(row: dict) -> dict[str, float]:
    """The entries of a history row or metrics dict that are numbers (not flags or text)."""
    return {k: float(v) for k, v in row.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
