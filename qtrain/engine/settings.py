"""The trainer's settings (the `trainer` config), typed. Their defaults live in
conf/config.yaml, the one place a user reads them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerSettings:
    monitor: str  # the metric that picks best.pt and drives early stopping
    monitor_mode: str  # max or min
    grad_clip_norm: float | None
    accumulate_batches: int
    keep_epoch_checkpoints: int
    limit_epochs: int | None
    limit_train_batches: int | None
    overfit_batches: int | None
    limit_eval_batches: int | None
    progress: bool

    def epochs(self, planned: int) -> int:
        """A stage's epochs: as planned, capped by limit_epochs."""
        return planned if self.limit_epochs is None else min(planned, self.limit_epochs)
