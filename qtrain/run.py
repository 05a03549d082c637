"""The thin runner: check, seed, instantiate, train in stages, test, report."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig

from qtrain import reports
from qtrain.config import TRUSTED_TARGETS, RunConfig, describe
from qtrain.engine.best import best_values
from qtrain.engine.checkpoint import clean_after_kill, load_checkpoint, load_weights
from qtrain.engine.distributed import ProcessGroup, process_group
from qtrain.engine.fit import Trainer
from qtrain.engine.hardware import (
    autocast_factory,
    configure_backends,
    grad_scaler,
    maybe_compile,
    memory_format,
    resolve_amp,
    seed_everything,
    step_profiler,
)
from qtrain.engine.interrupt import StopRequest
from qtrain.engine.loop import StepOptions
from qtrain.engine.resume import check_resumable
from qtrain.engine.run_checkpoints import RunCheckpoints
from qtrain.errors import TrainingInterrupted
from qtrain.models.build import build, check_circuit, config_keys
from qtrain.predict.export import export_model
from qtrain.predict.model_info import write_model_info
from qtrain.quantum.layer import noise_records
from qtrain.sweep.trial import sweep_trial
from qtrain.tasks import Task
from qtrain.tracking.console import announce, print_summary
from qtrain.tracking.tracker import Tracker, Trackers

log = logging.getLogger("qtrain")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train and/or test as the composed `cfg` says; write the run directory; return the metrics."""
    with execution_whitelist(TRUSTED_TARGETS):
        return _run(describe(cfg), run_dir)


def _run(cfg: RunConfig, run_dir: Path) -> dict[str, float]:
    with process_group(cfg.hardware) as processes:
        own, run_dir = run_dir, processes.broadcast(run_dir)  # under torchrun, every rank uses rank 0's
        if own != run_dir and own.is_dir() and not any(own.iterdir()):
            own.rmdir()  # the empty folder Hydra made for another rank
        # Everything that can be refused without training is, before the config tree is
        # printed and before a tracker opens a run: the checkpoint, the data, the model.
        parts = _prepare(cfg, processes)
        if processes.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            announce(cfg.values)
            for name, record in noise_records(parts.model).items():
                log.info("%s simulates noise: %s", name, ", ".join(f"{k}={v}" for k, v in record.items()))
        else:
            log.setLevel(logging.WARNING)  # rank 0 reports progress; the others only what goes wrong
        tracker = Trackers([instantiate(t) for t in cfg.tracking.values()]) if processes.is_main else Tracker()
        with tracker.track(cfg.values, run_dir), config_keys("model"):
            metrics = _train_and_test(cfg, run_dir, tracker, processes, parts)
            tracker.log_results(metrics, run_dir)
    return metrics


@dataclasses.dataclass
class RunParts:
    checkpoint: dict | None
    task: Task
    data: object
    model: torch.nn.Module


def _prepare(cfg: RunConfig, processes: ProcessGroup) -> RunParts:
    """Seed, read the checkpoint, the task, the data and build the model, in the order
    (and so with the random draws) of every run."""
    check_circuit(cfg.model, cfg.train, cfg.trainer.limit_eval_batches)
    seed_everything(cfg.seed)
    hardware, device = cfg.hardware, processes.device
    configure_backends(hardware.deterministic, hardware.cudnn_benchmark, hardware.tf32)
    checkpoint = load_checkpoint(cfg.ckpt_path) if cfg.ckpt_path else None
    if checkpoint is not None and cfg.train:
        check_resumable(cfg.values, list(cfg.stages), checkpoint["config"], cfg.ckpt_path)
        clean_after_kill(cfg.ckpt_path)
    task = instantiate(cfg.task)
    data = instantiate(cfg.dataset)
    if not processes.is_main:
        processes.barrier()  # rank 0 reads (or downloads) the data first, the others after it
    data.setup(device)
    if processes.is_main:
        processes.barrier()
    model = memory_format(build(cfg.model).to(device), hardware.channels_last)
    if cfg.init_from:
        load_weights(model, load_checkpoint(cfg.init_from, key="init_from"), "init_from", cfg.init_from)
    return RunParts(checkpoint, task, data, model)


def _train_and_test(
    cfg: RunConfig, run_dir: Path, tracker: Tracker, processes: ProcessGroup, parts: RunParts
) -> dict[str, float]:
    hardware, device = cfg.hardware, processes.device
    checkpoint, task, data, model = parts.checkpoint, parts.task, parts.data, parts.model
    amp = resolve_amp(device, hardware.amp)
    trial = sweep_trial(cfg.objective, task, run_dir) if processes.world_size == 1 else None
    log.info(
        "%s: %d train / %d val / %d test samples", data.name, data.size("train"), data.size("val"), data.size("test")
    )
    log.info(
        "%s: %s trainable parameters",
        type(model).__name__,
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
    )
    options = StepOptions(
        task=task,
        device=device,
        autocast=autocast_factory(device, amp),
        scaler=grad_scaler(device, amp),
    )
    trainer = Trainer(
        model,
        data,
        options,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler),
        stages=cfg.stages,
        settings=cfg.trainer,
        checkpoints=RunCheckpoints(run_dir, model, options.scaler, cfg.values, data, processes),
        processes=processes,
        compiled=maybe_compile(model, hardware.compile),
        on_epoch_end=tracker.log_epoch,
        on_epoch_saved=trial.epoch_ended if trial is not None else lambda history: None,
        profiler=step_profiler(run_dir / "profile", hardware.profile and processes.is_main, hardware.profile_steps),
        pretrained=bool(cfg.init_from),
    )
    if checkpoint is not None:
        trainer.restore(checkpoint, cfg.ckpt_path, weights_only=not cfg.train)
    if cfg.train:
        trainer.fit()
        trainer.load_best()
    metrics = best_values(trainer.state.history, task)
    if not processes.is_main:
        return processes.broadcast(None)  # rank 0 tests and writes the reports
    if cfg.test:
        # A stop signal during the test is not lost: the run ends as interrupted (exit 128 + signal).
        with StopRequest() as stop:
            metrics |= report_test_split(trainer, task, data, run_dir)
        if stop.requested:
            raise TrainingInterrupted(stop.requested, run_dir / "checkpoints" / "last.pt")
    processes.broadcast(metrics)
    reports.write_metrics(run_dir, metrics, trainer.state.stages)
    reports.write_history(run_dir, trainer.state.history)
    reports.plot_learning_curves(run_dir, trainer.state.history, task.score)
    write_model_info(run_dir, cfg.values, data, metrics, noise_records(model))
    if cfg.export:
        example = next(iter(data.eval_batches("test", limit=1)))[0].to(device)
        log.info(
            "exported the model to %s", export_model(trainer.final_model(), example, run_dir / "export" / "model.pt2")
        )
    tracker.log_model(trainer.final_model(), data)
    print_summary(metrics, trainer.state.stages)
    log.info("run directory: %s", run_dir)
    return metrics


def report_test_split(trainer: Trainer, task: Task, data, run_dir: Path) -> dict[str, float]:
    """Test-split metrics of the trainer's current weights, with the task's report and plots."""
    metrics, predicted, target = trainer.test()
    return metrics | task.report(predicted.numpy(), target.numpy(), data, run_dir, metrics)
