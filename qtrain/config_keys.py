"""Every key of a config is one qtrain reads. Hydra refuses a misspelled key it knows
(`stages.train.epoch=3`: "Did you mean: 'epochs'?"), but a key added with `+` (`+foo=1`,
`+optimizer.foo=1`, `+stages.train.epoch=3`) would be carried silently, or fail late
in a constructor. Here each is refused with the nearest accepted name.

(Composition refuses a key set without `+` in a group with a schema: qtrain.config_schema.)

The accepted keys: the top-level settings; for a node with a `_target_`, the callable's
arguments; for the groups without one (stages, trainer, hardware), their schema's."""

from __future__ import annotations

import functools
import inspect

from hydra.utils import get_method

from qtrain.config_schema import SCHEMAS, Hardware, Stage, Trainer, schema_keys
from qtrain.errors import ConfigError

TOP_LEVEL = (
    "seed", "train", "test", "ckpt_path", "init_from", "export", "objective", "tracking", "task", "dataset", "encoder", "model",
    "optimizer", "scheduler", "stages", "trainer", "hardware",
)  # fmt: skip
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
# Nodes without a `_target_` that a model passes on as keyword arguments.
PASSED_ON = {"quantum": "qtrain.quantum.layer.QuantumLayer"}


@functools.cache
def arguments(target: str) -> tuple[str, ...] | None:
    """The keyword arguments `target` takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(get_method(target)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL)


def check_keys(config: dict) -> None:
    _refuse_unknown(config, TOP_LEVEL, "", "a qtrain setting")
    for group, schema in (("trainer", Trainer), ("hardware", Hardware)):
        _refuse_unknown(config[group], schema_keys(schema), f"{group}.", SCHEMAS[schema])
    for name, stage in (config.get("stages") or {}).items():
        if stage is not None:
            _refuse_unknown(stage, schema_keys(Stage), f"stages.{name}.", SCHEMAS[Stage])
    _check_arguments(config, "")


def _check_arguments(node, prefix: str, target: str | None = None) -> None:
    if not isinstance(node, dict):
        return
    target = node.get("_target_", target)
    accepted = arguments(target) if isinstance(target, str) else None
    if accepted is not None:
        _refuse_unknown(node, accepted, prefix, f"an argument of {target}", ignore=HYDRA_KEYS)
    for key, value in node.items():
        _check_arguments(value, f"{prefix}{key}.", PASSED_ON.get(key) if "_target_" in node else None)


def _refuse_unknown(node: dict, accepted: tuple[str, ...], prefix: str, what: str, ignore: tuple = ()) -> None:
    for key, value in node.items():
        if key not in accepted and key not in ignore:
            raise ConfigError.unknown_key(f"{prefix}{key}", value, accepted, what)
