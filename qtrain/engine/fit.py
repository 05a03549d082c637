"""Training in stages: the loop over stages and epochs.

What a checkpoint restores is `TrainState` (train_state.py); the files are
`RunCheckpoints`' (run_checkpoints.py); which epoch is best and when to stop early,
`BestTracker`'s (best.py); one epoch, `loop.py`'s. A stage builds a fresh optimizer
and scheduler; a checkpoint taken anywhere, even mid-epoch on Ctrl-C, resumes to the
same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from qtrain.data.features import FeatureData, compute_features
from qtrain.engine.best import BestTracker
from qtrain.engine.checkpoint import load_weights, restore_rng_states
from qtrain.engine.distributed import ProcessGroup
from qtrain.engine.interrupt import StopRequest
from qtrain.engine.loop import EpochProgress, StepOptions, evaluate, train_epoch
from qtrain.engine.resume import reopen_lengthened_stage, resume_stage
from qtrain.engine.run_checkpoints import RunCheckpoints
from qtrain.engine.stages import (
    HeadsOnly,
    Stage,
    StageLoss,
    apply_stage,
    heads,
    plan_stages,
    trained_heads,
    unreached_units,
)
from qtrain.engine.train_state import TrainState
from qtrain.engine.trainable import HeadedModel, TrainableModel
from qtrain.errors import TrainingDiverged, TrainingInterrupted
from qtrain.tracking.console import bar_text, epoch_bar, epoch_line

if TYPE_CHECKING:
    from qtrain.config.schema import Stage as StageSettings
    from qtrain.config.schema import Trainer as TrainerSettings

log = logging.getLogger("qtrain")
STAGE_LINE = "stage %s: %d epochs, lr %.2g, %d steps per epoch, training %s"


class Trainer:
    """`options` is how a batch becomes a step (device, precision, task); the Trainer
    adds the settings' accumulation and clipping, and each stage trains with a copy
    carrying that stage's loss, frozen modules and scheduler stepping."""

    def __init__(
        self,
        model: TrainableModel,
        data,
        options: StepOptions,
        optimizer,
        scheduler,
        stages: dict[str, StageSettings],
        settings: TrainerSettings,
        checkpoints: RunCheckpoints,
        processes: ProcessGroup,
        compiled: nn.Module | None = None,
        on_epoch_end: Callable[[dict], None] = lambda row: None,
        on_epoch_saved: Callable[[list[dict]], None] = lambda history: None,
        profiler: torch.profiler.profile | None = None,
        pretrained: bool = False,
    ):
        """`pretrained`: the model's weights come from another run (init_from), so every
        head counts as trained; otherwise the heads that no stage trains are left out of
        the metrics (their scores are those of initial weights)."""
        self.task, self.settings = options.task, settings
        self.model, self.forward_model = model, model if compiled is None else compiled
        # What the current stage trains on, and with (under DDP: wrapped; stage_module is not).
        self.stage_data, self.stage_module, self.stage_model = data, self.forward_model, self.forward_model
        self.data = data
        self.stages = plan_stages(stages, model)  # refuses a bad stage before anything trains
        self.scored_heads = heads(model) if pretrained else trained_heads(self.stages, model)
        if untrained := [h for h in heads(model) if h not in self.scored_heads]:
            log.info("left out of the metrics, as no stage trains them: the heads %s", ", ".join(untrained))
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.checkpoints, self.processes = checkpoints, processes  # under DDP: rank 0 alone writes files
        self.on_epoch_end = on_epoch_end  # gets each history row (the tracker logs it)
        # Gets the history once the epoch's checkpoint is written: a sweep's trial reports
        # there, and a pruned trial stops with its last.pt.
        self.on_epoch_saved = on_epoch_saved
        self.profiler = profiler  # stepped once per optimizer step (hardware.profile)
        self.best = BestTracker(settings.monitor, settings.monitor_mode)
        self.state = TrainState()
        self.resume_from: dict | None = None
        # The last stage's loss until a stage starts: evaluating a checkpoint uses it.
        criterion = StageLoss(self.stages[-1].loss_weights, self.task.loss)
        stepping = {"accumulate": settings.accumulate_batches, "grad_clip_norm": settings.grad_clip_norm}
        self.options = replace(options, criterion=criterion, on_step=self._count_step, **stepping)

    def _ensemble_weights(self) -> dict[str, float]:
        return self.model.ensemble_weights() if isinstance(self.model, HeadedModel) else {}

    def _count_step(self) -> None:
        self.state.global_step += 1
        if self.profiler is not None:
            self.profiler.step()

    # -- resuming ----------------------------------------------------------------

    def restore(self, checkpoint: dict, path: str, weights_only: bool) -> None:
        """Load a checkpoint's weights; unless `weights_only`, also where training stood
        (the optimizer and scheduler are restored when their stage starts)."""
        load_weights(self.model, checkpoint, "ckpt_path", path)
        self.state = TrainState(**checkpoint["state"])
        if not weights_only:
            self.resume_from = checkpoint
            restore_rng_states(checkpoint["rng"])
            self.checkpoints.adopt_best(Path(path).expanduser().with_name("best.pt"), self.state)
            epochs = [self.settings.epochs(stage.epochs) for stage in self.stages]
            reopen_lengthened_stage(self.state, self.stages, epochs, checkpoint)

    # -- stages ------------------------------------------------------------------

    def fit(self) -> None:
        agree = self.processes.max  # any rank's signal stops every rank at the same step
        with (
            StopRequest(agree=lambda signum: int(agree([signum or 0])[0]) or None) as stop,
            self.profiler or contextlib.nullcontext(),
        ):
            for index, stage in enumerate(self.stages):
                if index >= self.state.stage_index:
                    self._run_stage(index, stage, stop)
            if stop.poll():  # a signal after the last step's check, e.g. while the last checkpoint was written
                raise TrainingInterrupted(stop.requested, self.checkpoints.folder / "last.pt")

    def _use_stage(self, stage: Stage) -> None:
        """Freeze what the stage does not train, set its heads and its loss."""
        frozen = apply_stage(self.model, stage)
        self.options = replace(self.options, frozen=frozen, criterion=StageLoss(stage.loss_weights, self.task.loss))

    def _cache_features(self, stage: Stage) -> FeatureData:
        """The frozen encoder's features of every split, computed once for the stage."""
        log.info("stage %s: caching the frozen encoder's features (features.pt)", stage.name)
        self.model.eval()
        save_to = self.checkpoints.run_dir / "features.pt" if self.processes.is_main else None
        with self.options.autocast():
            return compute_features(self.model.features, self.data, self.options.device, save_to)

    def _run_stage(self, index: int, stage: Stage, stop: StopRequest) -> None:
        epochs = self.settings.epochs(stage.epochs)
        self._use_stage(stage)
        if stage.cache_features:
            self.stage_data, self.stage_module = self._cache_features(stage), HeadsOnly(self.model)
        else:
            self.stage_data, self.stage_module = self.data, self.forward_model
        unreached = bool(unreached_units(stage, self.model))
        self.stage_model = self.processes.wrap(self.stage_module, find_unused_parameters=unreached)
        steps_per_epoch = math.ceil(len(self._train_batches(0, skip=0)) / self.settings.accumulate_batches)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = {} if stage.weight_decay is None else {"weight_decay": stage.weight_decay}
        optimizer = self.make_optimizer(params, lr=stage.lr, **decay)
        scheduler = self.make_scheduler(
            optimizer, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch
        )
        self.options = replace(self.options, step_scheduler=not isinstance(scheduler, ReduceLROnPlateau))
        if self.resume_from is not None and self.resume_from["optimizer_stage"] == index:
            checkpoint, self.resume_from = self.resume_from, None
            resume_stage(checkpoint, stage, optimizer, scheduler, self.options.scaler, self.options.step_scheduler)
        else:
            self.state.start_stage(index)
        log.info(STAGE_LINE, stage.name, epochs, stage.lr, steps_per_epoch, ", ".join(stage.trainable))
        while self.state.epoch < epochs and not self.best.stop(self.state, stage.patience):
            self._run_epoch(stage.name, epochs, optimizer, scheduler, stop)
        summary = {"name": stage.name, "epochs": self.state.epoch, "best": self.state.stage_best}
        self.state.stages.append(summary | {"wall_time_s": self.state.stage_seconds})
        self.state.stage_index = index + 1
        self.load_best()  # the next stage starts from this stage's best weights
        self.checkpoints.save("last.pt", self.state, optimizer, scheduler, index)

    def _train_batches(self, epoch_key: int, skip: int):
        limit = self.settings.limit_train_batches
        if self.settings.overfit_batches:  # the same batches (order and augmentation) every epoch
            epoch_key, limit = 0, self.settings.overfit_batches
        return self.stage_data.train_batches(epoch_key, skip=skip, limit=limit, shard=self.processes.shard)

    def _run_epoch(self, stage_name: str, epochs: int, optimizer, scheduler, stop: StopRequest) -> None:
        state = self.state
        progress = EpochProgress(**state.partial) if state.partial else EpochProgress()
        epoch_key = state.data_order_key()
        batches = self._train_batches(epoch_key, skip=progress.batches)
        started = time.perf_counter()
        description = f"{stage_name} {state.epoch + 1}/{epochs}"
        show_bar = self.settings.progress and self.processes.is_main
        with epoch_bar(description, progress.batches + len(batches), show_bar) as bar:
            finished = train_epoch(
                self.stage_model,
                batches,
                optimizer,
                scheduler,
                self.options,
                progress,
                stop,
                report=lambda p: bar(p.batches, bar_text(p, self.task.score)),
            )
        if finished:
            val = self.stage_data.eval_batches("val", self.settings.limit_eval_batches)
            metrics, _, _ = evaluate(self.stage_module, val, self.options, "val", self.scored_heads)
            metrics = self.processes.broadcast(metrics)  # every rank decides on rank 0's values
        state.stage_seconds += time.perf_counter() - started
        if not finished or stop.poll():
            state.partial = asdict(progress)
            path = self.checkpoints.save("last.pt", state, optimizer, scheduler, state.stage_index)
            raise TrainingInterrupted(stop.requested, path)
        self._end_epoch(stage_name, progress, metrics, optimizer, scheduler)

    def _end_epoch(self, stage_name: str, progress: EpochProgress, metrics: dict, optimizer, scheduler) -> None:
        state, settings = self.state, self.settings
        all_ranks = self._all_ranks(progress)
        train = all_ranks.metrics("train", self.task.score)
        for name, loss in (("train/loss", train["train/loss"]), ("val/loss", metrics["val/loss"])):
            if not math.isfinite(loss):
                raise TrainingDiverged(name, loss, stage_name, state.epoch + 1)
        value = metrics[settings.monitor]
        improved = self.best.update(state, value)
        row = {
            "stage": stage_name,
            "epoch": state.epoch + 1,
            "step": state.global_step,
            "lr": optimizer.param_groups[0]["lr"],
            **train,
            **metrics,
            **{f"ensemble/{head}": w for head, w in self._ensemble_weights().items()},
            "samples_per_s": all_ranks.samples_per_s,
        }
        if not self.options.step_scheduler:
            scheduler.step(value)
        state.epoch += 1
        state.partial = None
        state.history.append(row)
        self.on_epoch_end(row)
        self.checkpoints.end_epoch(state, improved, stage_name, optimizer, scheduler, settings.keep_epoch_checkpoints)
        score = self.task.score
        shown = ("train/loss", f"train/{score}", "val/loss", f"val/{score}", settings.monitor)
        log.info("%s", epoch_line(row, shown, improved))
        self.on_epoch_saved(state.history)

    def _all_ranks(self, progress: EpochProgress) -> EpochProgress:
        """The epoch's training sums over every rank (all-reduced); its time, the slowest rank's."""
        samples, loss_sum, score_sum = self.processes.sum([progress.samples, progress.loss_sum, progress.score_sum])
        (seconds,) = self.processes.max([progress.seconds])
        return EpochProgress(progress.batches, int(samples), loss_sum, score_sum, seconds)

    # -- evaluation ----------------------------------------------------------------

    def load_best(self) -> None:
        self.checkpoints.load_best(self.options.device)

    def final_model(self) -> nn.Module:
        """The model as it is tested and used: the last stage's heads and loss."""
        self._use_stage(self.stages[-1])
        return self.model

    def test(self) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        self.final_model()
        batches = self.data.eval_batches("test", self.settings.limit_eval_batches)
        return evaluate(self.forward_model, batches, self.options, "test", self.scored_heads)
