"""`python -m qtrain`: the Hydra entry point; returns the objective to sweepers."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from qtrain import TRUSTED_TARGETS
from qtrain.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from qtrain.objective import objective

log = logging.getLogger("qtrain")

# An absolute path: Hydra resolves a relative one against the module's package when
# started through the `qtrain` console script, where no `conf` package exists.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONFIG_DIR, config_name="config", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    from qtrain.run import run  # torch and friends load after Hydra has parsed the CLI (fast --help)

    hydra_cfg = HydraConfig.get()
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


if __name__ == "__main__":
    main()
