"""The one boundary between conf/ and the code: a composed DictConfig in (`compose`, or
the command line), a checked, typed RunConfig out (`describe`). schema.py types, checks.py
what types cannot say, targets.py the `_target_` allow-list, resolvers.py `${...}`,
evaluation.py a checkpoint's experiment. Imports without torch (fast `--help`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from qtrain.config import resolvers  # noqa: F401  (registered for every config)
from qtrain.config.checks import check_config
from qtrain.config.evaluation import checkpoint_experiment
from qtrain.config.schema import RunConfig, Stage, schema_errors_in_a_line
from qtrain.config.targets import TRUSTED_TARGETS

# Absolute: Hydra resolves a relative path against the module's package under the `qtrain` script.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")

__all__ = ["CONFIG_DIR", "TRUSTED_TARGETS", "RunConfig", "compose", "describe", "first_point"]


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False, evaluate: bool = True) -> DictConfig:
    """The config `python -m qtrain <overrides>` would run (for `train=false ckpt_path=...`,
    the checkpoint's experiment, as on the command line; `evaluate=False`: the command
    line's own, without reading the checkpoint)."""
    overrides = list(overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR), schema_errors_in_a_line(overrides):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=return_hydra_config)
        evaluated = checkpoint_experiment(cfg, overrides, return_hydra_config=return_hydra_config) if evaluate else None
        return cfg if evaluated is None else evaluated


def first_point(overrides: Sequence[str]) -> list[str]:
    """A sweep's overrides at its first point (`optimizer.lr=1e-3,3e-4` -> `optimizer.lr=1e-3`)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [
        f"{o.input_line.split('=', 1)[0]}={next(iter(o.sweep_string_iterator()))}"
        if o.is_sweep_override()
        else o.input_line
        for o in parsed
    ]


def describe(cfg: DictConfig) -> RunConfig:
    """The checked run description of a composed config; a mistake raises ConfigError."""
    values = check_config(cfg)
    typed = {"trainer", "hardware", "stages", "values"}
    return RunConfig(
        **{field.name: cfg.get(field.name) for field in fields(RunConfig) if field.name not in typed},
        trainer=OmegaConf.to_object(cfg.trainer),
        hardware=OmegaConf.to_object(cfg.hardware),
        stages=stage_settings(values["stages"]),
        values=values,
    )


def stage_settings(stages: dict | DictConfig) -> dict[str, Stage]:
    """Each stage's settings, typed, from plain values (a run's, or a checkpoint's)."""
    schema = OmegaConf.structured(Stage)
    return {name: OmegaConf.to_object(OmegaConf.merge(schema, s)) for name, s in stages.items() if s is not None}
