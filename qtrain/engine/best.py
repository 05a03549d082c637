"""The best value of the monitored metric and early stopping: which epochs improve,
and when a stage has waited long enough. The counts live in TrainState, so a resumed
run goes on where the interrupted one stood."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from qtrain.engine.train_state import TrainState
from qtrain.tasks import Task

log = logging.getLogger("qtrain")


@dataclass(frozen=True)
class BestTracker:
    monitor: str  # e.g. val/acc
    mode: str  # max or min

    def better(self, new: float, old: float | None) -> bool:
        return old is None or (new > old if self.mode == "max" else new < old)

    def update(self, state: TrainState, value: float) -> bool:
        """Record an epoch's value; True if it is the stage's best so far."""
        improved = self.better(value, state.stage_best)
        state.bad_epochs = 0 if improved else state.bad_epochs + 1
        state.stage_best = value if improved else state.stage_best
        return improved

    def stop(self, state: TrainState, patience: int | None) -> bool:
        if patience is not None and state.bad_epochs >= patience:
            log.info("early stop: %s did not improve for %d epochs", self.monitor, patience)
            return True
        return False


def best_values(history: list[dict], task: Task) -> dict[str, float]:
    """Best validation values over all epochs of each metric in the task's `best`, the
    max or the min as its `directions` say: `val/acc_best`, `val/mse_best`, ..."""
    best = {}
    for metric in task.best:
        values = [row[f"val/{metric}"] for row in history]
        if values:
            best[f"val/{metric}_best"] = max(values) if task.mode(metric) == "max" else min(values)
    return best
