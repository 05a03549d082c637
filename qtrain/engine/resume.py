"""Resuming a run from its last.pt: which stage it goes on in, and that stage's
optimizer, scheduler and loss scale as the interrupted run left them."""

from __future__ import annotations

import logging

from qtrain.engine.schedulers import replan_schedule
from qtrain.engine.stages import Stage
from qtrain.engine.train_state import TrainState

log = logging.getLogger("qtrain")


def reopen_lengthened_stage(state: TrainState, stages: list[Stage], epochs: list[int], checkpoint: dict) -> None:
    """A run that finished a stage and is resumed with more epochs for it goes on in
    that stage (from the weights it ended with: its best), rather than past it.
    `epochs`: each stage's epochs in this run (trainer.limit_epochs applied)."""
    index = checkpoint["optimizer_stage"]
    if state.stage_index != index + 1 or index >= len(stages):
        return  # interrupted inside a stage, which simply runs to its (new) length
    saved = checkpoint["config"]["stages"][stages[index].name]
    if epochs[index] > state.epoch and stages[index].epochs > saved["epochs"]:
        state.stage_index = index
        state.stages.pop()


def resume_stage(checkpoint: dict, stage: Stage, optimizer, scheduler, scaler, step_scheduler: bool) -> None:
    """The interrupted stage's optimizer, scheduler and loss scale; a schedule planned
    anew when the stage's length changed."""
    optimizer.load_state_dict(checkpoint["optimizer"])
    planned = checkpoint["config"]["stages"][stage.name]["epochs"]
    if planned != stage.epochs and step_scheduler:
        replan_schedule(scheduler, checkpoint["scheduler"]["last_epoch"])
        log.info(
            "stage %s: %d epochs instead of %d: the learning-rate schedule is planned anew for the new "
            "length, at its step %d (lr %.2e)",
            stage.name,
            stage.epochs,
            planned,
            scheduler.last_epoch,
            optimizer.param_groups[0]["lr"],
        )
    else:
        scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
