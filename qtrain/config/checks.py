"""The checks of a composed config that its schemas (qtrain.config.schema) cannot say:
callables outside the allow-list, keys added with `+` that nothing reads, ranges, and
rules across groups. Each refusal is one line naming the key, the value and what is
accepted (qtrain.errors.ConfigError)."""

from __future__ import annotations

import functools
import inspect
import numbers

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationToMissingValueError

from qtrain.config.resolvers import direction, monitor_mode
from qtrain.config.schema import SCHEMAS, Hardware, Stage, Trainer, schema_keys
from qtrain.config.targets import check_targets
from qtrain.errors import ConfigError

TOP_LEVEL = (
    "seed", "train", "test", "ckpt_path", "init_from", "export", "objective", "tracking", "task", "dataset", "encoder", "model",
    "optimizer", "scheduler", "stages", "trainer", "hardware",
)  # fmt: skip
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
PASSED_ON = {"quantum": "qtrain.quantum.layer.QuantumLayer"}  # nodes without a `_target_` a model passes on


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# name -> (the test a value passes, what is accepted)
RANGES = {
    "positive integer": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
    "positive": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "non-negative": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "fraction": (lambda v: _is_number(v) and 0 < v < 1, "a fraction strictly between 0 and 1"),
}


def _in_range(kind: str, key: str, value, optional: bool = False) -> None:
    test, accepted = RANGES[kind]
    if not (optional and value is None) and not test(value):
        raise ConfigError(key, value, f"must be {accepted}")


def check_config(cfg: DictConfig) -> None:
    raw = OmegaConf.to_container(cfg)
    check_targets(raw)
    check_keys(raw)
    # The task's metrics, named in a line here (the resolvers that read them would raise
    # the same refusal wrapped in OmegaConf's interpolation error).
    monitor_mode(cfg.task._target_, cfg.trainer.monitor)
    direction(cfg.task._target_, cfg.objective)
    # Before the interpolations: typed keys read these (model.quantum.seed, stages.*.lr).
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError("seed", cfg.seed, "must be an integer")
    _in_range("positive", "optimizer.lr", cfg.optimizer.lr)
    _check_interpolations(cfg)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], "???", f"is required; set it on the command line, e.g. {missing[0]}=...")
    stages = {name: stage for name, stage in (cfg.stages or {}).items() if stage is not None}
    if not stages:
        raise ConfigError("stages", cfg.stages, "needs at least one stage, e.g. stages=single")
    _in_range("non-negative", "optimizer.weight_decay", cfg.optimizer.get("weight_decay"), optional=True)
    for name, stage in stages.items():
        _in_range("positive integer", f"stages.{name}.epochs", stage.epochs)
        _in_range("positive", f"stages.{name}.lr", stage.lr)
        _in_range("positive integer", f"stages.{name}.patience", stage.patience, optional=True)
    _in_range("positive integer", "dataset.batch_size", cfg.dataset.batch_size)
    _in_range("positive integer", "dataset.image_size", cfg.dataset.get("image_size"), optional=True)
    for split in ("val", "test"):
        _in_range("fraction", f"dataset.{split}_fraction", cfg.dataset.get(f"{split}_fraction"), optional=True)
    trainer = cfg.trainer
    _in_range("positive integer", "trainer.accumulate_batches", trainer.accumulate_batches)
    _in_range("positive", "trainer.grad_clip_norm", trainer.grad_clip_norm, optional=True)
    for key in ("limit_epochs", "limit_train_batches", "overfit_batches", "limit_eval_batches"):
        _in_range("positive integer", f"trainer.{key}", trainer[key], optional=True)
    if cfg.init_from and cfg.ckpt_path:
        raise ConfigError(
            "init_from", cfg.init_from, "starts a new run from a checkpoint's weights; ckpt_path resumes one: give one"
        )
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path", None, "train=false evaluates a checkpoint: give ckpt_path=<run>/checkpoints/best.pt"
        )


def _check_interpolations(cfg: DictConfig) -> None:
    """A key that reads another group's missing key: groups that do not fit together."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationToMissingValueError:
        return  # a required key (???) read elsewhere: the missing-key check names it
    except InterpolationKeyError as error:
        raise ConfigError(
            error.full_key,
            _raw(cfg, error.full_key),
            f"{error.msg.splitlines()[0].lower()}: these groups do not fit together "
            "(model=lstm_signal goes with dataset=signal, model=ensemble_heads with dataset=features, "
            "the image models with the image datasets)",
        ) from None


def _raw(cfg: DictConfig, key: str):
    raw = OmegaConf.to_container(cfg)
    for part in key.split("."):
        raw = raw[part]
    return raw


# Every key of a config is one qtrain reads. A key added with `+` (`+foo=1`,
# `+optimizer.foo=1`, `+stages.train.epoch=3`) would be carried silently, or fail late in
# a constructor: each is refused with the nearest accepted name. The accepted keys: the
# top-level settings; the schemas' for their groups; a `_target_`'s arguments.


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
