"""The trainer's settings (the `trainer` config), typed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerSettings:
    monitor: str  # the metric that picks best.pt and drives early stopping
    monitor_mode: str  # max or min
    grad_clip_norm: float | None = 1.0
    accumulate_batches: int = 1
    keep_epoch_checkpoints: int = 0
    limit_epochs: int | None = None
    limit_train_batches: int | None = None
    overfit_batches: int | None = None
    limit_eval_batches: int | None = None
    progress: bool = True

    def epochs(self, planned: int) -> int:
        """A stage's epochs: as planned, capped by limit_epochs."""
        return planned if self.limit_epochs is None else min(planned, self.limit_epochs)
