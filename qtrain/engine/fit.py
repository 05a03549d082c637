"""Training in stages: epochs, validation, early stopping, checkpoints, history.

The `Trainer` owns what a checkpoint must restore (`TrainState`); `loop.py` owns one
epoch. A stage builds a fresh optimizer and scheduler; a checkpoint taken anywhere,
even mid-epoch on Ctrl-C, resumes to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from qtrain.data.features import FeatureData, compute_features
from qtrain.engine.checkpoint import (
    copy_checkpoint,
    load_weights,
    prune_epoch_checkpoints,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from qtrain.engine.distributed import ProcessGroup
from qtrain.engine.interrupt import StopRequest
from qtrain.engine.loop import EpochProgress, StepOptions, evaluate, train_epoch
from qtrain.engine.stages import HeadsOnly, Stage, StageLoss, apply_stage, plan_stages, unreached_units
from qtrain.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from qtrain.model_info import data_description
from qtrain.tasks import Task
from qtrain.tracking.console import epoch_bar

log = logging.getLogger("qtrain")


@dataclass
class TrainState:
    """Where training stands; everything here goes into every checkpoint."""

    stage_index: int = 0
    epoch: int = 0  # epochs completed in the current stage
    global_step: int = 0
    stage_best: float | None = None  # best monitored value of the current stage (best.pt)
    bad_epochs: int = 0
    stage_seconds: float = 0.0
    partial: dict | None = None  # EpochProgress of an epoch interrupted midway
    history: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)  # finished stages


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        data,
        optimizer,
        scheduler,
        stages: DictConfig,
        settings: DictConfig,
        device: torch.device,
        autocast,
        scaler: torch.amp.GradScaler,
        run_dir: Path,
        config: DictConfig,
        processes: ProcessGroup,
        task: Task,
        compiled: nn.Module | None = None,
        on_epoch_end: Callable[[dict], None] = lambda row: None,
        profiler: torch.profiler.profile | None = None,
    ):
        if settings.monitor not in task.monitors():
            raise ConfigError("trainer.monitor", settings.monitor, f"use one of {', '.join(task.monitors())}")
        self.task = task
        self.model, self.forward_model = model, model if compiled is None else compiled
        # What the current stage trains on, and with (under DDP: wrapped; stage_module is not).
        self.stage_data, self.stage_module, self.stage_model = data, self.forward_model, self.forward_model
        self.data, self.settings = data, settings
        self.stages = plan_stages(stages, model)  # refuses a bad stage before anything trains
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.device, self.run_dir, self.config = device, run_dir, config
        self.processes = processes  # under DDP: rank 0 alone writes files
        self.on_epoch_end = on_epoch_end  # gets each history row (the tracker logs it)
        self.profiler = profiler  # stepped once per optimizer step (hardware.profile)
        self.checkpoints = run_dir / "checkpoints"
        self.state = TrainState()
        self.resume_from: dict | None = None
        self.options = StepOptions(
            criterion=StageLoss(self.stages[-1].loss_weights, task.loss),
            task=task,
            device=device,
            autocast=autocast,
            scaler=scaler,
            accumulate=settings.accumulate_batches,
            grad_clip_norm=settings.grad_clip_norm,
        )

    # -- checkpoints -------------------------------------------------------------

    def restore(self, checkpoint: dict, path: str, weights_only: bool) -> None:
        """Load a checkpoint's weights; unless `weights_only`, also where training stood
        (the optimizer and scheduler are restored when their stage starts)."""
        load_weights(self.model, checkpoint, "ckpt_path", path)
        self.state = TrainState(**checkpoint["state"])
        if not weights_only:
            self.resume_from = checkpoint
            restore_rng_states(checkpoint["rng"])
            self._adopt_best(Path(path).expanduser().with_name("best.pt"))
            self._reopen_lengthened_stage(checkpoint)

    def _reopen_lengthened_stage(self, checkpoint: dict) -> None:
        """A run that finished a stage and is resumed with more epochs for it goes on in
        that stage (from the weights it ended with: its best), rather than past it."""
        index = checkpoint["optimizer_stage"]
        if self.state.stage_index != index + 1 or index >= len(self.stages):
            return  # interrupted inside a stage, which simply runs to its (new) length
        stage, saved = self.stages[index], checkpoint["config"]["stages"][self.stages[index].name]
        if self._epochs(stage) > self.state.epoch and stage.epochs > saved["epochs"]:
            self.state.stage_index = index
            self.state.stages.pop()

    def _adopt_best(self, best: Path) -> None:
        """A resumed run carries on the interrupted run's best.pt (the reference for
        improvement and the weights that are tested if nothing beats them) and the
        stage_<name>_best.pt of its finished stages."""
        if self.processes.is_main:
            for stage_best in best.parent.glob("stage_*_best.pt"):
                copy_checkpoint(stage_best, self.checkpoints / stage_best.name)
            if best.is_file():
                copy_checkpoint(best, self.checkpoints / "best.pt")
        if not self.processes.broadcast(best.is_file()) and self.state.stage_best is not None:
            log.warning("no best.pt beside %s: the best weights so far are lost; tracking starts anew", best.parent)
            self.state.stage_best = None

    def _save(self, name: str, optimizer, scheduler, optimizer_stage: int) -> Path:
        path = self.checkpoints / name
        if not self.processes.is_main:
            return path
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "optimizer_stage": optimizer_stage,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": self.options.scaler.state_dict(),
                "state": asdict(self.state),
                "rng": rng_states(),
                "config": OmegaConf.to_container(self.config, resolve=True),
                "data": data_description(self.data),
            },
            path,
        )
        return path

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
                raise TrainingInterrupted(stop.requested, self.checkpoints / "last.pt")

    def _epochs(self, stage: Stage) -> int:
        limit = self.settings.limit_epochs
        return stage.epochs if limit is None else min(stage.epochs, limit)

    def _use_stage(self, stage: Stage) -> None:
        """Freeze what the stage does not train, set its heads and its loss."""
        self.options.frozen = apply_stage(self.model, stage)
        self.options.criterion = StageLoss(stage.loss_weights, self.task.loss)

    def _cache_features(self, stage: Stage) -> FeatureData:
        """The frozen encoder's features of every split, computed once for the stage."""
        started = time.perf_counter()
        self.model.eval()
        with self.options.autocast():
            splits = compute_features(self.model.features, self.data, self.device)
        features = FeatureData.of(splits, self.data.class_names, self.data.batch_size, self.data.split_seed)
        if self.processes.is_main:
            features.save(self.run_dir / "features.pt")
        log.info(
            "stage %s: %d features per sample cached for %s samples in %.1fs (features.pt)",
            stage.name,
            features.num_features,
            "/".join(str(features.size(s)) for s in ("train", "val", "test")),
            time.perf_counter() - started,
        )
        return features

    def _run_stage(self, index: int, stage: Stage, stop: StopRequest) -> None:
        name, epochs = stage.name, self._epochs(stage)
        self._use_stage(stage)
        if stage.cache_features:
            self.stage_data, self.stage_module = self._cache_features(stage), HeadsOnly(self.model)
        else:
            self.stage_data, self.stage_module = self.data, self.forward_model
        unreached = bool(unreached_units(stage, self.model))
        self.stage_model = self.processes.wrap(self.stage_module, find_unused_parameters=unreached)
        batches_per_epoch = len(self._train_batches(0, skip=0))
        steps_per_epoch = math.ceil(batches_per_epoch / self.settings.accumulate_batches)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = {} if stage.weight_decay is None else {"weight_decay": stage.weight_decay}
        optimizer = self.make_optimizer(params, lr=stage.lr, **decay)
        scheduler = self.make_scheduler(
            optimizer, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch
        )
        self.options.step_scheduler = not isinstance(scheduler, ReduceLROnPlateau)
        if self.resume_from is not None and self.resume_from["optimizer_stage"] == index:
            optimizer.load_state_dict(self.resume_from["optimizer"])
            planned = self.resume_from["config"]["stages"][name]["epochs"]
            if planned != stage.epochs and self.options.step_scheduler:
                replan_schedule(scheduler, self.resume_from["scheduler"]["last_epoch"])
                log.info(
                    "stage %s: %d epochs instead of %d: the learning-rate schedule is planned anew for the new "
                    "length, at its step %d (lr %.2e)",
                    name,
                    stage.epochs,
                    planned,
                    scheduler.last_epoch,
                    optimizer.param_groups[0]["lr"],
                )
            else:
                scheduler.load_state_dict(self.resume_from["scheduler"])
            self.options.scaler.load_state_dict(self.resume_from["scaler"])
            self.resume_from = None
        else:
            self.state.stage_index, self.state.epoch, self.state.bad_epochs = index, 0, 0
            self.state.stage_best, self.state.stage_seconds, self.state.partial = None, 0.0, None
        log.info(
            "stage %s: %d epochs, lr %.2g, %d steps per epoch, training %s",
            name,
            epochs,
            stage.lr,
            steps_per_epoch,
            ", ".join(stage.trainable),
        )
        while self.state.epoch < epochs and not self._stop_early(stage):
            self._run_epoch(name, epochs, optimizer, scheduler, stop)
        self.state.stages.append(
            {
                "name": name,
                "epochs": self.state.epoch,
                "best": self.state.stage_best,
                "wall_time_s": self.state.stage_seconds,
            }
        )
        self.state.stage_index = index + 1
        self.load_best()  # the next stage starts from this stage's best weights
        self._save("last.pt", optimizer, scheduler, index)

    def _train_batches(self, epoch_key: int, skip: int):
        limit = self.settings.limit_train_batches
        if self.settings.overfit_batches:  # the same batches (order and augmentation) every epoch
            epoch_key, limit = 0, self.settings.overfit_batches
        return self.stage_data.train_batches(epoch_key, skip=skip, limit=limit, shard=self.processes.shard)

    def _stop_early(self, stage: Stage) -> bool:
        patience = stage.patience
        if patience is not None and self.state.bad_epochs >= patience:
            log.info("early stop: %s did not improve for %d epochs", self.settings.monitor, patience)
            return True
        return False

    def _run_epoch(self, stage_name: str, epochs: int, optimizer, scheduler, stop: StopRequest) -> None:
        state, settings = self.state, self.settings
        progress = EpochProgress(**state.partial) if state.partial else EpochProgress()
        epoch_key = state.stage_index * 100_000 + state.epoch  # a fresh data order per stage and epoch
        batches = self._train_batches(epoch_key, skip=progress.batches)
        started = time.perf_counter()

        def count_step():
            state.global_step += 1
            if self.profiler is not None:
                self.profiler.step()

        self.options.on_step = count_step
        description = f"{stage_name} {state.epoch + 1}/{epochs}"
        show_bar = settings.progress and self.processes.is_main
        with epoch_bar(description, progress.batches + len(batches), show_bar) as bar:
            finished = train_epoch(
                self.stage_model,
                batches,
                optimizer,
                scheduler,
                self.options,
                progress,
                stop,
                report=lambda p: bar(p.batches, _bar_text(p, self.task.score)),
            )
        if finished:
            val = self.stage_data.eval_batches("val", settings.limit_eval_batches)
            metrics, _, _ = evaluate(self.stage_module, val, self.options, "val")
            metrics = self.processes.broadcast(metrics)  # every rank decides on rank 0's values
        state.stage_seconds += time.perf_counter() - started
        if not finished or stop.poll():
            state.partial = asdict(progress)
            path = self._save("last.pt", optimizer, scheduler, state.stage_index)
            raise TrainingInterrupted(stop.requested, path)
        self._end_epoch(stage_name, progress, metrics, optimizer, scheduler)

    def _better(self, new: float, old: float | None) -> bool:
        return old is None or (new > old if self.settings.monitor_mode == "max" else new < old)

    def _end_epoch(self, stage_name: str, progress: EpochProgress, metrics: dict, optimizer, scheduler) -> None:
        state, settings = self.state, self.settings
        all_ranks = self._all_ranks(progress)
        train = all_ranks.metrics("train", self.task.score)
        for name, loss in (("train/loss", train["train/loss"]), ("val/loss", metrics["val/loss"])):
            if not math.isfinite(loss):
                raise TrainingDiverged(name, loss, stage_name, state.epoch + 1)
        value = metrics[settings.monitor]
        improved_stage = self._better(value, state.stage_best)
        state.bad_epochs = 0 if improved_stage else state.bad_epochs + 1
        state.stage_best = value if improved_stage else state.stage_best
        row = {
            "stage": stage_name,
            "epoch": state.epoch + 1,
            "step": state.global_step,
            "lr": optimizer.param_groups[0]["lr"],
            **train,
            **metrics,
            **{f"ensemble/{head}": w for head, w in getattr(self.model, "ensemble_weights", dict)().items()},
            "samples_per_s": all_ranks.samples_per_s,
        }
        if not self.options.step_scheduler:
            scheduler.step(value)
        state.epoch += 1
        state.partial = None
        state.history.append(row)
        self.on_epoch_end(row)
        # One serialization per epoch; best.pt, stage_<name>_best.pt and epoch_NNNN.pt are that same state.
        # last.pt comes last: a crash before it leaves the previous last.pt, whose resume replays this
        # epoch; after it, the best files already hold what last.pt says is the best.
        if improved_stage:
            best = self._save("best.pt", optimizer, scheduler, state.stage_index)
            if self.processes.is_main:
                copy_checkpoint(best, self.checkpoints / f"stage_{stage_name}_best.pt")
                copy_checkpoint(best, self.checkpoints / "last.pt")
            last = self.checkpoints / "last.pt"
        else:
            last = self._save("last.pt", optimizer, scheduler, state.stage_index)
        if settings.keep_epoch_checkpoints and self.processes.is_main:
            copy_checkpoint(last, self.checkpoints / f"epoch_{len(state.history):04d}.pt")
            prune_epoch_checkpoints(self.checkpoints, settings.keep_epoch_checkpoints)
        shown = ("train/loss", f"train/{self.task.score}", "val/loss", f"val/{self.task.score}", settings.monitor)
        log.info(
            "%s epoch %d  %s  lr %.2e  %.0f samples/s%s",
            stage_name,
            row["epoch"],
            "  ".join(f"{name} {row[name]:.4f}" for name in dict.fromkeys(shown)),
            row["lr"],
            row["samples_per_s"],
            "  *" if improved_stage else "",
        )

    def _all_ranks(self, progress: EpochProgress) -> EpochProgress:
        """The epoch's training sums over every rank (all-reduced); its time, the slowest rank's."""
        samples, loss_sum, score_sum = self.processes.sum([progress.samples, progress.loss_sum, progress.score_sum])
        (seconds,) = self.processes.max([progress.seconds])
        return EpochProgress(progress.batches, int(samples), loss_sum, score_sum, seconds)

    # -- evaluation ----------------------------------------------------------------

    def load_best(self) -> None:
        """The current stage's best weights: read by rank 0 (other ranks may not see its
        files, on other machines), sent to the rest."""
        best = self.checkpoints / "best.pt"
        if self.processes.is_main and best.is_file():
            self.model.load_state_dict(torch.load(best, map_location=self.device, weights_only=True)["model"])
        self.processes.broadcast_module(self.model)

    def final_model(self) -> nn.Module:
        """The model as it is tested and used: the last stage's heads and loss."""
        self._use_stage(self.stages[-1])
        return self.model

    def test(self) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        self.final_model()
        batches = self.data.eval_batches("test", self.settings.limit_eval_batches)
        return evaluate(self.forward_model, batches, self.options, "test")

    def summary(self) -> dict[str, float]:
        """Best validation values over all epochs, `val/<metric>_best`, each the max or
        the min as the task says (`val/acc_best`, `val/loss_best`, `val/mse_best`, ...)."""
        best = {}
        for metric, mode in self.task.best.items():
            values = [row[f"val/{metric}"] for row in self.state.history]
            if values:
                best[f"val/{metric}_best"] = max(values) if mode == "max" else min(values)
        return best


def _bar_text(progress: EpochProgress, score: str) -> str:
    metrics = progress.metrics("train", score)
    return (
        f"loss {metrics['train/loss']:.4f}  {score} {metrics[f'train/{score}']:.3f}  "
        f"{progress.samples_per_s:,.0f} samples/s"
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
