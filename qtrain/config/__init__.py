"""The one boundary between the YAML groups under conf/ and the code.

A composed DictConfig goes in (`compose`, or Hydra's command line), a checked, typed
run description comes out (`describe` -> RunConfig). What is in here:

- schema.py: the typed groups (trainer, hardware, a stage, the quantum spec);
- checks.py: what the schemas cannot say (ranges, `+` keys nothing reads, rules
  across groups);
- targets.py: the `_target_` allow-list, declared once;
- resolvers.py: `${direction:...}`, `${monitor_mode:...}`, ...;
- evaluation.py: `train=false ckpt_path=...` composes the checkpoint's experiment;
- build.py: parts built from config nodes, their refusals said in config keys.

Imports without torch (`python -m qtrain --help` stays fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from qtrain.config import resolvers  # noqa: F401  (registered for every config)
from qtrain.config.evaluation import NAME as CHECKPOINT_CONFIG
from qtrain.config.evaluation import store_checkpoint_config
from qtrain.config.run_config import RunConfig, describe
from qtrain.config.schema import schema_errors_in_a_line
from qtrain.config.targets import TRUSTED_TARGETS

# The config groups. An absolute path: Hydra resolves a relative one against the module's
# package when started through the `qtrain` console script, where no `conf` package exists.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")

__all__ = ["CONFIG_DIR", "TRUSTED_TARGETS", "RunConfig", "compose", "describe"]


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config `python -m qtrain <overrides>` would run (for `train=false ckpt_path=...`,
    the checkpoint's experiment, as on the command line)."""
    overrides = list(overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR), schema_errors_in_a_line():
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=return_hydra_config)
        if not store_checkpoint_config(cfg, overrides):
            return cfg
        return hydra_compose(CHECKPOINT_CONFIG, overrides=overrides, return_hydra_config=return_hydra_config)
