"""Learning-rate schedules over one stage, built from torch's own schedulers.

Each factory takes the stage's optimizer, its total number of optimizer steps and
the steps per epoch (the runner fills these in) plus the YAML keys, and returns a
torch scheduler. All are stepped after every optimizer step, except
ReduceLROnPlateau, which is stepped once per epoch with the monitored metric.
"""

from __future__ import annotations

import warnings

from torch.optim import Optimizer, lr_scheduler


def constant(optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def cosine(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, eta_min: float) -> lr_scheduler.LRScheduler:
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1), eta_min=eta_min)


def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float,
    warmup_start_factor: float,
    eta_min: float,
) -> lr_scheduler.LRScheduler:
    warmup = min(int(warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
    if warmup == 0:
        return cosine(optimizer, total_steps, steps_per_epoch, eta_min)
    return lr_scheduler.SequentialLR(
        optimizer,
        [
            lr_scheduler.LinearLR(optimizer, start_factor=warmup_start_factor, total_iters=warmup),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup, eta_min=eta_min),
        ],
        milestones=[warmup],
    )


def step(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, step_epochs: int, gamma: float
) -> lr_scheduler.LRScheduler:
    return lr_scheduler.StepLR(optimizer, step_size=max(step_epochs * steps_per_epoch, 1), gamma=gamma)


def plateau(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, factor: float, patience: int, min_lr: float, mode: str
) -> lr_scheduler.ReduceLROnPlateau:
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)


def onecycle(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
) -> lr_scheduler.LRScheduler:
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(total_steps, 1),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


def replan_schedule(scheduler, steps: int) -> None:
    """Bring a new schedule (built for the stage's new length) to the step training
    stands at: the learning rate of a run planned with that length from the start."""
    # From the schedule's first value: the optimizer state just loaded holds the old plan's.
    for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps):
            scheduler.step()
