"""`python -m qtrain`: the Hydra entry point; returns the objective to sweepers."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from qtrain.config import CONFIG_DIR, TRUSTED_TARGETS
from qtrain.config.evaluation import checkpoint_experiment
from qtrain.config.schema import schema_errors_in_a_line
from qtrain.engine.interrupt import SignalStop, stop_at_once_on_sigterm
from qtrain.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from qtrain.sweep.sweeper import QtrainOptunaSweeper

log = logging.getLogger("qtrain")


@hydra.main(config_path=CONFIG_DIR, config_name="config", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
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
    try:
        metrics = run(cfg, Path(hydra_cfg.runtime.output_dir))
        if cfg.objective not in metrics:
            produced = ", ".join(sorted(metrics))
            raise ConfigError("objective", cfg.objective, f"not a metric of this run; it produced {produced}")
        return metrics[cfg.objective]
    except TrainingInterrupted as stop:
        log.warning("%s", stop)
        sys.exit(128 + stop.signum)
    except (ConfigError, TrainingDiverged) as error:
        if hydra_cfg.mode == RunMode.MULTIRUN or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise  # a sweeper records the job as failed and goes on; or the user asked for the traceback
        log.error("%s", error)  # one line on the console and in the run's log file
        sys.exit(1)


def report_schema_errors_in_a_line() -> None:
    """Hydra reports a value a schema refuses over five lines, in OmegaConf's words;
    qtrain's refusals are one line, `key=value: what is accepted`.

    The one private use of Hydra in qtrain: Hydra has no public hook for an error of
    composition. Callbacks run only once a config has composed, and run_and_report honours
    `sys.excepthook` for a job's exceptions only (hydra-ecosystem/hydra#3317, for #2802),
    writing a composition error to stderr itself. So `run_and_report` is wrapped, and the
    overrides are read with Hydra's own parser of the command line. This waits on that
    hook reaching composition errors (hydra-core is pinned in pyproject.toml;
    tests/run/test_faults.py runs these refusals end to end)."""
    import hydra._internal.utils as hydra_utils  # the exception named above

    report = hydra_utils.run_and_report

    def run_and_report(func):
        def composed():
            overrides = hydra_utils.get_args_parser().parse_known_args()[0].overrides
            with schema_errors_in_a_line(overrides):
                return func()

        return report(composed)

    hydra_utils.run_and_report = run_and_report


def cli() -> None:
    """`python -m qtrain` and the `qtrain` command."""
    report_schema_errors_in_a_line()
    Plugins.instance().register(QtrainOptunaSweeper)  # hydra/sweeper=qtrain_optuna
    stop_at_once_on_sigterm()
    try:
        main()
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM, where training had no safe point to stop at
        signum = stop.signum if isinstance(stop, SignalStop) else signal.SIGINT
        print(f"stopped by signal {signum}", file=sys.stderr)
        sys.exit(128 + signum)


if __name__ == "__main__":
    cli()
