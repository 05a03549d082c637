"""`python -m qtrain`: the Hydra entry point; returns the objective to sweepers (or, for
a trial the sweep's pruner stopped, the TrialPruned that says where)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from qtrain.config import CONFIG_DIR, TRUSTED_TARGETS, compose, first_point
from qtrain.config.evaluation import checkpoint_experiment
from qtrain.engine.interrupt import SignalStop, stop_at_once_on_sigterm
from qtrain.errors import ConfigError, DiskFull, TrainingDiverged, TrainingInterrupted, TrialPruned
from qtrain.models.build import check_circuit
from qtrain.sweep.sweeper import QtrainOptunaSweeper

log = logging.getLogger("qtrain")


@hydra.main(config_path=CONFIG_DIR, config_name="config", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float | TrialPruned:
    from qtrain.run import run  # torch and friends load after Hydra has parsed the CLI (fast --help)

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and "RANK" in os.environ:
        log.error("a sweep under torchrun is not supported: sweep jobs each launch their own torchrun")
        sys.exit(1)
    evaluated = checkpoint_experiment(cfg, list(hydra_cfg.overrides.task))
    if evaluated is not None:  # train=false ckpt_path=...: the checkpoint's experiment runs, and is recorded
        cfg = evaluated
        if hydra_cfg.output_subdir is not None:
            OmegaConf.save(cfg, Path(hydra_cfg.runtime.output_dir, hydra_cfg.output_subdir, "config.yaml"))
    resume_a_requeued_job(cfg, hydra_cfg)
    try:
        metrics = run(cfg, Path(hydra_cfg.runtime.output_dir))
        if cfg.objective not in metrics:
            produced = ", ".join(sorted(metrics))
            raise ConfigError("objective", cfg.objective, f"not a metric of this run; it produced {produced}")
        return metrics[cfg.objective]
    except TrialPruned as pruned:  # the sweeper's pruner stopped it: the sweeper's result, not an error
        log.info("%s", pruned)
        return pruned
    except TrainingInterrupted as stop:
        log.warning("%s", stop)
        sys.exit(128 + stop.signum)
    except DiskFull as full:
        fail(with_resume_step(full, cfg, Path(hydra_cfg.runtime.output_dir)), hydra_cfg)
    except (ConfigError, TrainingDiverged) as error:
        fail(error, hydra_cfg)


def fail(error: Exception, hydra_cfg: DictConfig) -> NoReturn:
    if hydra_cfg.mode == RunMode.MULTIRUN or os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error  # a sweeper records the job as failed and goes on; or the user asked for the traceback
    log.error("%s", error)  # one line on the console and in the run's log file
    sys.exit(1)


def with_resume_step(full: DiskFull, cfg: DictConfig, run_dir: Path) -> DiskFull:
    """`full`, saying what to do once space is freed (where its writer did not): go on
    from the run's checkpoints, which are written whole or not at all."""
    last = run_dir / "checkpoints" / "last.pt"
    if full.next_step:
        return full
    if last.is_file():
        return full.with_next_step(f"resume with ckpt_path={last}")
    if cfg.train and cfg.ckpt_path:
        return full.with_next_step(f"resume with ckpt_path={cfg.ckpt_path}")
    return full


def resume_a_requeued_job(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """A sweep job whose own folder already holds checkpoints/last.pt ran before and was
    stopped and requeued (SLURM preemption or time limit, through submitit): it goes on
    from there, as the same trial, and ends as an uninterrupted job would."""
    last = Path(hydra_cfg.runtime.output_dir, "checkpoints", "last.pt")
    if hydra_cfg.mode == RunMode.MULTIRUN and cfg.train and not cfg.ckpt_path and last.is_file():
        log.info("this job was requeued: resuming from %s", last)
        cfg.ckpt_path = str(last)


def refuse_a_schema_error_in_a_line() -> None:
    """A value a schema refuses, said in qtrain's one line (`key=value: what is accepted`)
    before Hydra starts: Hydra reports an error of composition over five lines and has no
    public hook for it (it honours `sys.excepthook` for a job's errors only:
    hydra-ecosystem/hydra#3317). So the command line's overrides are composed once with
    the compose API first, a sweep at its first point; any other error is left to Hydra,
    which composes again (about 0.2 s) and reports it its own way."""
    try:
        arguments, _ = COMMAND_LINE.parse_known_args()
        if arguments.not_a_run is None:
            cfg = compose(first_point(arguments.overrides), evaluate=False)  # the job reads a checkpoint
            if cfg.train or not cfg.ckpt_path:  # (an evaluation's circuit is the checkpoint's: the run checks it)
                check_circuit(cfg.model, cfg.train, cfg.trainer.limit_eval_batches)  # before a run folder exists
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    except Exception:  # noqa: BLE001 -- whatever else Hydra will find and report
        return


# What of Hydra's command line the check reads (hydra.main parses it again, fully).
COMMAND_LINE = argparse.ArgumentParser(add_help=False, exit_on_error=False)
COMMAND_LINE.add_argument("overrides", nargs="*")
COMMAND_LINE.add_argument("--multirun", "-m", "--run", "-r", "--resolve", action="store_true")
COMMAND_LINE.add_argument("--cfg", "-c", "--package", "-p")
COMMAND_LINE.add_argument(  # help, completion, another primary config: nothing of a run to check
    *("--help", "-h", "--hydra-help", "--version", "--info", "-i", "--shell-completion", "-sc"),
    *("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"),
    dest="not_a_run",
    nargs="?",
    const=True,
)


def cli() -> None:
    """`python -m qtrain` and the `qtrain` command."""
    refuse_a_schema_error_in_a_line()
    Plugins.instance().register(QtrainOptunaSweeper)  # hydra/sweeper=qtrain_optuna
    stop_at_once_on_sigterm()
    # A log line that cannot be written (qtrain.log on a full disk) is dropped rather than
    # printed as a traceback over the one line that says why the run stopped.
    logging.raiseExceptions = False
    try:
        main()
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM, where training had no safe point to stop at
        signum = stop.signum if isinstance(stop, SignalStop) else signal.SIGINT
        print(f"stopped by signal {signum}", file=sys.stderr)
        sys.exit(128 + signum)


if __name__ == "__main__":
    cli()
