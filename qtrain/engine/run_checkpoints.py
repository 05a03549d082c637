"""A run's checkpoints folder: last.pt, best.pt, stage_<name>_best.pt and the
epoch_NNNN.pt copies; what a resumed run adopts of the interrupted run's. Under DDP
rank 0 alone writes files, and its weights reach the other ranks."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from qtrain.engine.checkpoint import (
    copy_checkpoint,
    data_description,
    prune_epoch_checkpoints,
    rng_states,
    save_checkpoint,
)
from qtrain.engine.distributed import ProcessGroup
from qtrain.engine.train_state import TrainState

log = logging.getLogger("qtrain")


class RunCheckpoints:
    def __init__(self, run_dir: Path, model: nn.Module, scaler, config: dict, data, processes: ProcessGroup):
        """`config`: the run's config as plain values (RunConfig.values), kept in each checkpoint."""
        self.run_dir, self.folder = run_dir, run_dir / "checkpoints"
        self.model, self.scaler = model, scaler
        self.config, self.data, self.processes = config, data, processes

    def save(self, name: str, state: TrainState, optimizer, scheduler, optimizer_stage: int) -> Path:
        path = self.folder / name
        if not self.processes.is_main:
            return path
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "optimizer_stage": optimizer_stage,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "state": asdict(state),
                "rng": rng_states(),
                "config": self.config,
                "data": data_description(self.data),
            },
            path,
        )
        return path

    def end_epoch(self, state: TrainState, improved: bool, stage: str, optimizer, scheduler, keep: int) -> None:
        """One serialization per epoch; best.pt, stage_<name>_best.pt and epoch_NNNN.pt are
        that same state. last.pt comes last: a crash before it leaves the previous last.pt,
        whose resume replays this epoch; after it, the best files already hold what last.pt
        says is the best."""
        if improved:
            best = self.save("best.pt", state, optimizer, scheduler, state.stage_index)
            if self.processes.is_main:
                copy_checkpoint(best, self.folder / f"stage_{stage}_best.pt")
                copy_checkpoint(best, self.folder / "last.pt")
            last = self.folder / "last.pt"
        else:
            last = self.save("last.pt", state, optimizer, scheduler, state.stage_index)
        if keep and self.processes.is_main:
            copy_checkpoint(last, self.folder / f"epoch_{len(state.history):04d}.pt")
            prune_epoch_checkpoints(self.folder, keep)

    def adopt_best(self, best: Path, state: TrainState) -> None:
        """A resumed run carries on the interrupted run's best.pt (the reference for
        improvement and the weights that are tested if nothing beats them) and the
        stage_<name>_best.pt of its finished stages."""
        if self.processes.is_main:
            for stage_best in best.parent.glob("stage_*_best.pt"):
                copy_checkpoint(stage_best, self.folder / stage_best.name)
            if best.is_file():
                copy_checkpoint(best, self.folder / "best.pt")
        if not self.processes.broadcast(best.is_file()) and state.stage_best is not None:
            log.warning("no best.pt beside %s: the best weights so far are lost; tracking starts anew", best.parent)
            state.stage_best = None

    def load_best(self, device: torch.device) -> None:
        """The current stage's best weights: read by rank 0 (other ranks may not see its
        files, on other machines), sent to the rest."""
        best = self.folder / "best.pt"
        if self.processes.is_main and best.is_file():
            self.model.load_state_dict(torch.load(best, map_location=device, weights_only=True)["model"])
        self.processes.broadcast_module(self.model)
