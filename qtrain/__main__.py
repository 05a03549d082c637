"""`python -m qtrain`: the Hydra entry point; returns the objective to sweepers."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import hydra
import hydra._internal.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

from qtrain import CONFIG_DIR, TRUSTED_TARGETS
from qtrain.checkpoint_config import NAME as CHECKPOINT_CONFIG
from qtrain.checkpoint_config import evaluation_config
from qtrain.config_schema import schema_errors_in_a_line
from qtrain.engine.interrupt import SignalStop, stop_at_once_on_sigterm
from qtrain.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from qtrain.objective import objective
from qtrain.sweep.sweeper import QtrainOptunaSweeper

log = logging.getLogger("qtrain")


@hydra.main(config_path=CONFIG_DIR, config_name="config", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    from qtrain.run import run  # torch and friends load after Hydra has parsed the CLI (fast --help)

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and "RANK" in os.environ:
        log.error("a sweep under torchrun is not supported: sweep jobs each launch their own torchrun")
        sys.exit(1)
    try:
        return objective(run(cfg, Path(hydra_cfg.runtime.output_dir)), cfg.objective)
    except TrainingInterrupted as stop:
        log.warning("%s", stop)
        sys.exit(128 + stop.signum)
    except (ConfigError, TrainingDiverged) as error:
        if hydra_cfg.mode == RunMode.MULTIRUN or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise  # a sweeper records the job as failed and goes on; or the user asked for the traceback
        log.error("%s", error)  # one line on the console and in the run's log file
        sys.exit(1)


def give_other_ranks_a_scratch_dir() -> None:
    """torchrun starts every rank as `python -m qtrain ...`, and Hydra would make each an
    output directory of its own. Ranks other than 0 get a scratch one, removed at exit:
    the run uses rank 0's (qtrain.run sends it to them)."""
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:
        scratch = tempfile.mkdtemp(prefix=f"qtrain-rank{rank}-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


def compose_from_checkpoint() -> None:
    """`train=false ckpt_path=...`: compose the checkpoint's experiment (qtrain.checkpoint_config)."""
    folder = evaluation_config(sys.argv[1:])
    if folder is not None:
        sys.argv += [f"--config-dir={folder}", f"--config-name={CHECKPOINT_CONFIG}"]


def report_schema_errors_in_a_line() -> None:
    """Hydra reports a value a schema refuses (qtrain.config_schema) over five lines, with
    OmegaConf's wording; qtrain's refusals are one line, `key=value: what is accepted`.
    Hydra has no hook for errors of composition, so its reporter is wrapped (hydra-core
    is pinned in pyproject.toml; tests/test_faults.py runs these refusals end to end)."""
    report = hydra_utils.run_and_report

    def run_and_report(func):
        def composed():
            with schema_errors_in_a_line():
                return func()

        return report(composed)

    hydra_utils.run_and_report = run_and_report


def cli() -> None:
    """`python -m qtrain` and the `qtrain` command."""
    report_schema_errors_in_a_line()
    Plugins.instance().register(QtrainOptunaSweeper)  # hydra/sweeper=qtrain_optuna
    give_other_ranks_a_scratch_dir()
    compose_from_checkpoint()
    stop_at_once_on_sigterm()
    try:
        main()
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM, where training had no safe point to stop at
        signum = stop.signum if isinstance(stop, SignalStop) else signal.SIGINT
        print(f"stopped by signal {signum}", file=sys.stderr)
        sys.exit(128 + signum)


if __name__ == "__main__":
    cli()
