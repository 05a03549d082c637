"""Where training stands: everything in it goes into every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

# The data order of an epoch is drawn from a key, `stage_index * STAGE_KEY_STRIDE + epoch`:
# a fresh order per stage and epoch, and the same after a resume as in an uninterrupted
# run. The stride bounds a stage's epochs (keys of two stages never meet below it);
# changing it changes the data order, and so the results, of every run.
STAGE_KEY_STRIDE = 100_000


@dataclass
class TrainState:
    stage_index: int = 0
    epoch: int = 0  # epochs completed in the current stage
    global_step: int = 0
    stage_best: float | None = None  # best monitored value of the current stage (best.pt)
    bad_epochs: int = 0
    stage_seconds: float = 0.0
    partial: dict | None = None  # EpochProgress of an epoch interrupted midway
    history: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)  # finished stages

    def data_order_key(self) -> int:
        """The key the current epoch's training batches are shuffled with."""
        return self.stage_index * STAGE_KEY_STRIDE + self.epoch

    def start_stage(self, index: int) -> None:
        self.stage_index, self.epoch, self.bad_epochs = index, 0, 0
        self.stage_best, self.stage_seconds, self.partial = None, 0.0, None
