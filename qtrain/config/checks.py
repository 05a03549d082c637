"""What the schemas (qtrain.config.schema) cannot say, checked before anything runs:
callables outside the allow-list, keys added with `+` that nothing reads, ranges, rules
across groups. Each refusal is one line: the key, the value, what is accepted."""

from __future__ import annotations

import functools
import inspect
import numbers
from dataclasses import fields

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationToMissingValueError

from qtrain.config.schema import SCHEMAS, Hardware, RunConfig, Stage, Trainer, plain_values, schema_keys
from qtrain.config.targets import check_targets
from qtrain.errors import ConfigError

TOP_LEVEL = tuple(field.name for field in fields(RunConfig) if field.name != "values")
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
PASSED_ON = {"quantum": "qtrain.quantum.layer.QuantumLayer"}  # nodes without a `_target_` a model passes on
RANGES = {  # what is accepted: the test a value passes
    "a positive integer": lambda v: isinstance(v, int) and v > 0,
    "a number > 0": lambda v: isinstance(v, numbers.Real) and v > 0,
    "a number >= 0": lambda v: isinstance(v, numbers.Real) and v >= 0,
    "a fraction strictly between 0 and 1": lambda v: isinstance(v, numbers.Real) and 0 < v < 1,
}


def _in_range(accepted: str, key: str, value, optional: bool = False) -> None:
    if not (optional and value is None) and (isinstance(value, bool) or not RANGES[accepted](value)):
        raise ConfigError(key, value, f"must be {accepted}")


def check_config(cfg: DictConfig) -> dict:
    """Refuse what the schemas cannot say; return the config's plain values (resolved once)."""
    from qtrain.tasks import direction, monitor_mode  # torch loads for a run, not for `--help`

    raw = OmegaConf.to_container(cfg)
    check_targets(raw)
    check_keys(raw)
    # The task's metrics, said in a line here (their resolvers would wrap it in OmegaConf's error).
    monitor_mode(cfg.task._target_, cfg.trainer.monitor)
    direction(cfg.task._target_, cfg.objective)
    # Before the interpolations: typed keys read these (model.quantum.seed, stages.*.lr).
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError("seed", cfg.seed, "must be an integer")
    _in_range("a number > 0", "optimizer.lr", cfg.optimizer.lr)
    values = _resolved(cfg)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], "???", f"is required; set it on the command line, e.g. {missing[0]}=...")
    stages = {name: stage for name, stage in (cfg.stages or {}).items() if stage is not None}
    if not stages:
        raise ConfigError("stages", cfg.stages, "needs at least one stage, e.g. stages=single")
    _in_range("a number >= 0", "optimizer.weight_decay", cfg.optimizer.get("weight_decay"), optional=True)
    for name, stage in stages.items():
        _in_range("a positive integer", f"stages.{name}.epochs", stage.epochs)
        _in_range("a number > 0", f"stages.{name}.lr", stage.lr)
        _in_range("a positive integer", f"stages.{name}.patience", stage.patience, optional=True)
    _in_range("a positive integer", "dataset.batch_size", cfg.dataset.batch_size)
    _in_range("a positive integer", "dataset.image_size", cfg.dataset.get("image_size"), optional=True)
    for split in ("val", "test"):
        fraction = cfg.dataset.get(f"{split}_fraction")
        _in_range("a fraction strictly between 0 and 1", f"dataset.{split}_fraction", fraction, optional=True)
    trainer = cfg.trainer
    _in_range("a positive integer", "trainer.accumulate_batches", trainer.accumulate_batches)
    _in_range("a number > 0", "trainer.grad_clip_norm", trainer.grad_clip_norm, optional=True)
    for key in ("limit_epochs", "limit_train_batches", "overfit_batches", "limit_eval_batches"):
        _in_range("a positive integer", f"trainer.{key}", trainer[key], optional=True)
    if cfg.init_from and cfg.ckpt_path:
        raise ConfigError(
            "init_from", cfg.init_from, "starts a new run from a checkpoint's weights; ckpt_path resumes one: give one"
        )
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path", None, "train=false evaluates a checkpoint: give ckpt_path=<run>/checkpoints/best.pt"
        )
    return values


def _resolved(cfg: DictConfig) -> dict | None:
    """The plain values; a key that reads another group's missing key is refused: groups
    that do not fit together."""
    try:
        return plain_values(cfg)
    except InterpolationToMissingValueError:
        return None  # a required key (???) read elsewhere: the missing-key check names it
    except InterpolationKeyError as error:
        raw = OmegaConf.to_container(cfg)
        for part in error.full_key.split("."):
            raw = raw[part]
        raise ConfigError(
            error.full_key,
            raw,
            f"{error.msg.splitlines()[0].lower()}: these groups do not fit together "
            "(model=lstm_signal goes with dataset=signal, model=ensemble_heads with dataset=features, "
            "the image models with the image datasets)",
        ) from None


def check_keys(config: dict) -> None:
    """A key added with `+` (`+foo=1`, `+optimizer.foo=1`) that nothing reads is refused with
    the nearest accepted name: the top-level settings, a schema's keys, a `_target_`'s arguments."""
    _refuse_unknown(config, TOP_LEVEL, "", "a qtrain setting")
    for group, schema in (("trainer", Trainer), ("hardware", Hardware)):
        _refuse_unknown(config[group], schema_keys(schema), f"{group}.", SCHEMAS[schema])
    for name, stage in (config.get("stages") or {}).items():
        if stage is not None:
            _refuse_unknown(stage, schema_keys(Stage), f"stages.{name}.", SCHEMAS[Stage])
    _check_arguments(config, "")


@functools.cache
def arguments(target: str) -> tuple[str, ...] | None:
    """The keyword arguments `target` takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(get_method(target)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL)


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
