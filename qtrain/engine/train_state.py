"""Where training stands: everything in it goes into every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def start_stage(self, index: int) -> None:
        self.stage_index, self.epoch, self.bad_epochs = index, 0, 0
        self.stage_best, self.stage_seconds, self.partial = None, 0.0, None
