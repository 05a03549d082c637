"""The tracker a run reports to: this base tracks nothing (`tracking=none`);
`MlflowTracker` fills the same four calls in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from qtrain.errors import TrainingInterrupted


class Tracker:
    @contextlib.contextmanager
    def track(self, cfg: DictConfig, run_dir: Path) -> Iterator[Tracker]:
        """Open a tracked run around the block; it ends FINISHED, or FAILED if the block
        raises, or KILLED if it was interrupted (Ctrl-C, SIGTERM)."""
        self.begin(cfg, run_dir)
        try:
            yield self
        except (TrainingInterrupted, KeyboardInterrupt):
            self.end("KILLED")
            raise
        except BaseException:
            self.end("FAILED")
            raise
        self.end("FINISHED")

    def begin(self, cfg: DictConfig, run_dir: Path) -> None:
        """Create the run, with the config as params and the run's tags."""

    def log_epoch(self, row: dict) -> None:
        """One history row (numbers become metrics at the row's global step)."""

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        """The final metrics and the run directory's files."""

    def end(self, status: str) -> None:
        """Close the run with an MLflow status: FINISHED, FAILED or KILLED."""
