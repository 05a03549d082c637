"""Resuming a run from its last.pt: whether it may (the settings it learned with), which
stage it goes on in, and that stage's optimizer, scheduler and loss scale as the
interrupted run left them. (The files: RunCheckpoints.adopt_best; the half-written
files a kill left: checkpoint.clean_after_kill; evaluating a checkpoint instead:
qtrain.config.evaluation.)"""

from __future__ import annotations

import logging

from qtrain.config.schema import flatten
from qtrain.engine.schedulers import replan_schedule
from qtrain.engine.stages import Stage
from qtrain.engine.train_state import TrainState
from qtrain.errors import ConfigError

log = logging.getLogger("qtrain")

# Keys that may change between a run and its resumption: how and where it runs, not what it learns.
PER_INVOCATION = (
    "ckpt_path", "init_from", "train", "test", "export", "objective", "hardware.", "tracking.", "trainer.progress",
)  # fmt: skip


def check_resumable(values: dict, stages: list[str], saved: dict, ckpt_path: str) -> None:
    """Resuming continues the saved run, so what it learns from must be what it learned
    from. `values`: this run's config as plain values; `stages`: the names it runs."""
    now, before = flatten(values), flatten(saved)
    extension = extension_keys(stages, saved)
    changed = sorted(
        key
        for key in now.keys() | before.keys()
        if not key.startswith(PER_INVOCATION) and not _is_extension(key, extension) and now.get(key) != before.get(key)
    )
    if changed:
        overrides = " ".join(f"{key}={before.get(key)}" for key in changed)
        raise ConfigError(
            "ckpt_path",
            ckpt_path,
            f"the checkpoint's run used other settings; resume with the same ones: {overrides} "
            "(or train=false to only evaluate it)",
        )


def extension_keys(stages: list[str], saved: dict) -> tuple[str, ...]:
    """What a resume may change to take a run further: each stage's length, and stages
    added after the saved ones (the saved stages first, in their order)."""
    before = [name for name, stage in (saved.get("stages") or {}).items() if stage is not None]
    added = stages[len(before) :] if stages[: len(before)] == before else []
    return tuple(f"stages.{name}.epochs" for name in before) + tuple(f"stages.{name}." for name in added)


def _is_extension(key: str, extension: tuple[str, ...]) -> bool:
    """`key` is one of the extension's keys (an added stage's own key is `stages.<name>`
    in a checkpoint that held it as null)."""
    return key.startswith(extension) or f"{key}." in extension


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
