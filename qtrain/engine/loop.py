"""One epoch of training and one pass of evaluation: the whole loop on one screen."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qtrain.engine.interrupt import StopRequest
from qtrain.tasks import Task


@dataclass
class EpochProgress:
    """Running sums of one training epoch; kept in a checkpoint taken mid-epoch."""

    batches: int = 0
    samples: int = 0
    loss_sum: float = 0.0
    score_sum: float = 0.0  # the task's score summed over samples (correct predictions, squared errors)
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / max(self.seconds, 1e-9)

    def metrics(self, prefix: str, score: str) -> dict[str, float]:
        seen = max(self.samples, 1)
        return {f"{prefix}/loss": self.loss_sum / seen, f"{prefix}/{score}": self.score_sum / seen}


@dataclass(frozen=True)
class StepOptions:
    """How a batch becomes an optimizer step. Immutable: the Trainer gives each stage its
    own copy (dataclasses.replace) with the stage's loss, frozen modules and stepping."""

    task: Task
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    scaler: torch.amp.GradScaler
    # (output, target) -> (loss, the output the metrics judge): the stage's stages.StageLoss
    criterion: Callable | None = None
    accumulate: int = 1
    grad_clip_norm: float | None = None
    step_scheduler: bool = True  # False for ReduceLROnPlateau, stepped once per epoch
    on_step: Callable[[], None] = field(default=lambda: None)
    frozen: list[nn.Module] = field(default_factory=list)  # kept in eval mode while training


def train_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler,
    options: StepOptions,
    progress: EpochProgress,
    stop: StopRequest,
    report: Callable[[EpochProgress], None] = lambda p: None,
) -> bool:
    """Train over `batches`, adding to `progress`; returns False if a stop was requested.

    A stop is honoured only at an optimizer-step boundary, so the weights, the
    optimizer and `progress` always describe a whole number of steps.
    """
    model.train()
    for module in options.frozen:
        module.eval()
    total = len(batches)
    loss_sum = torch.zeros((), device=options.device)
    score_sum = torch.zeros((), dtype=torch.float64, device=options.device)
    start = time.perf_counter()
    pending = 0  # batches whose gradients await an optimizer step
    for i, (x, y) in enumerate(batches):
        x = x.to(options.device, non_blocking=True)
        y = y.to(options.device, non_blocking=True)
        steps_now = pending + 1 == options.accumulate or i == total - 1
        with _gradient_sync(model, steps_now):
            with options.autocast():
                loss, judged = options.criterion(model(x), y)
            options.scaler.scale(loss / options.accumulate).backward()
        loss_sum += loss.detach() * len(y)
        score_sum += options.task.batch_score(judged.detach(), y)
        progress.samples += len(y)
        pending += 1
        if pending == options.accumulate or i == total - 1:
            optimizer_step(model, optimizer, scheduler, options)
            progress.batches += pending
            pending = 0
            if stop.poll():
                break
            if progress.batches % 20 == 0:
                _flush(progress, loss_sum, score_sum, start)
                loss_sum.zero_(), score_sum.zero_()
                start = time.perf_counter()
                report(progress)
    _flush(progress, loss_sum, score_sum, start)
    report(progress)
    return not stop.poll()


def _gradient_sync(model: nn.Module, steps_now: bool):
    """DDP all-reduces the gradients in every backward pass; with gradient accumulation
    only the last batch before an optimizer step needs that, the others skip it."""
    if isinstance(model, DistributedDataParallel) and not steps_now:
        return model.no_sync()
    return contextlib.nullcontext()


def _flush(progress: EpochProgress, loss_sum: torch.Tensor, score_sum: torch.Tensor, start: float) -> None:
    # One device sync per flush instead of one per batch.
    progress.loss_sum += loss_sum.item()
    progress.score_sum += score_sum.item()
    progress.seconds += time.perf_counter() - start


def optimizer_step(model: nn.Module, optimizer, scheduler, options: StepOptions) -> None:
    if options.grad_clip_norm is not None:
        options.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip_norm)
    options.scaler.step(optimizer)
    options.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if options.step_scheduler:
        scheduler.step()
    options.on_step()


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable, options: StepOptions, prefix: str, scored_heads: Collection[str] = ()
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Mean loss and the task's metrics over `batches`, as `<prefix>/loss`,
    `<prefix>/acc`, ... (for a model with named heads: the ensemble's, and
    `<prefix>/<score>_<head>` for each of the `scored_heads`); also the predictions and
    the targets (on the CPU)."""
    model.eval()
    task = options.task
    loss_sum = torch.zeros((), device=options.device)
    seen = 0
    predictions: dict[str, list[torch.Tensor]] = {}  # "" for the judged output, else per head
    targets = []
    for x, y in batches:
        x = x.to(options.device, non_blocking=True)
        y = y.to(options.device, non_blocking=True)
        with options.autocast():
            output = model(x)
            loss, judged = options.criterion(output, y)
        loss_sum += loss.float() * len(y)
        seen += len(y)
        named = {head: out for head, out in output.items() if head in scored_heads} if isinstance(output, dict) else {}
        for name, out in {"": judged, **named}.items():
            predictions.setdefault(name, []).append(task.predict(out))
        targets.append(y)
    # Kept on the device until the end: one copy to the CPU per split, not a sync per batch.
    target = torch.cat(targets).cpu()
    predicted = {name: torch.cat(parts).cpu() for name, parts in predictions.items()}
    judged_predicted = predicted.pop("")
    metrics = {f"{prefix}/loss": loss_sum.item() / max(seen, 1), **task.metrics(judged_predicted, target, prefix)}
    score = f"{prefix}/{task.score}"
    for head, head_predicted in predicted.items():
        metrics[f"{score}_{head}"] = task.metrics(head_predicted, target, prefix)[score]
    return metrics, judged_predicted, target
