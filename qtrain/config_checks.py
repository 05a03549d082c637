"""Checks of the composed config that YAML types cannot express, before anything runs."""

from __future__ import annotations

import numbers

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationToMissingValueError

from qtrain.config_keys import check_keys
from qtrain.config_schema import plain_values
from qtrain.engine.stages import enabled_stages
from qtrain.errors import ConfigError
from qtrain.objective import direction, monitor_mode
from qtrain.targets import CONFIG_TARGETS


def _positive_int(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, value, "must be a positive integer")


def _positive_number(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        raise ConfigError(key, value, "must be a number > 0")


def _non_negative_number(key: str, value) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or value < 0:
        raise ConfigError(key, value, "must be a number >= 0")


def _fraction(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ConfigError(key, value, "must be a fraction strictly between 0 and 1")


def _optional(check, key: str, value) -> None:
    if value is not None:
        check(key, value)


def _check_interpolations(cfg: DictConfig) -> None:
    """A key that reads another group's missing key: groups that do not fit together."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationToMissingValueError:
        return  # a required key (???) read elsewhere: the missing-key check names it
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


def check_targets(config: dict, prefix: str = "") -> None:
    """Every `_target_` is one of qtrain.targets.CONFIG_TARGETS: a config (from the command
    line, or read from a checkpoint someone sent) never names a callable that loads files
    or runs code. Hydra's whitelist refuses them too, with a traceback; this says it in a line."""
    for key, value in config.items():
        if key == "_target_" and value not in CONFIG_TARGETS:
            raise ConfigError(
                f"{prefix}_target_",
                value,
                "not a callable configs may name: qtrain's models, datasets, tasks, schedulers, trackers "
                "and torch.optim optimizers (the list: qtrain/targets.py)",
            )
        if isinstance(value, dict):
            check_targets(value, f"{prefix}{key}.")


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
    _positive_number("optimizer.lr", cfg.optimizer.lr)
    _check_interpolations(cfg)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], "???", f"is required; set it on the command line, e.g. {missing[0]}=...")
    if not isinstance(cfg.stages, DictConfig) or not enabled_stages(cfg.stages):
        raise ConfigError("stages", cfg.stages, "needs at least one stage, e.g. stages=single")
    _optional(_non_negative_number, "optimizer.weight_decay", cfg.optimizer.get("weight_decay"))
    for name, stage in enabled_stages(cfg.stages).items():
        _positive_int(f"stages.{name}.epochs", stage.epochs)
        _positive_number(f"stages.{name}.lr", stage.lr)
        _optional(_positive_int, f"stages.{name}.patience", stage.get("patience"))
    _positive_int("dataset.batch_size", cfg.dataset.batch_size)
    _optional(_positive_int, "dataset.image_size", cfg.dataset.get("image_size"))  # features have none
    _optional(_fraction, "dataset.val_fraction", cfg.dataset.get("val_fraction"))
    _optional(_fraction, "dataset.test_fraction", cfg.dataset.get("test_fraction"))
    trainer = cfg.trainer
    _positive_int("trainer.accumulate_batches", trainer.accumulate_batches)
    _optional(_positive_number, "trainer.grad_clip_norm", trainer.grad_clip_norm)
    for key in ("limit_epochs", "limit_train_batches", "overfit_batches", "limit_eval_batches"):
        _optional(_positive_int, f"trainer.{key}", trainer[key])
    if cfg.init_from and cfg.ckpt_path:
        raise ConfigError(
            "init_from", cfg.init_from, "starts a new run from a checkpoint's weights; ckpt_path resumes one: give one"
        )
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path", None, "train=false evaluates a checkpoint: give ckpt_path=<run>/checkpoints/best.pt"
        )


# Keys that may change between a run and its resumption: how and where it runs, not what it learns.
# (An evaluation takes more from its invocation: qtrain.checkpoint_config.)
PER_INVOCATION = (
    "ckpt_path", "init_from", "train", "test", "export", "objective", "hardware.", "tracking.", "trainer.progress",
)  # fmt: skip


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def extension_keys(cfg: DictConfig, saved: dict) -> tuple[str, ...]:
    """What a resume may change to take a run further: each stage's length, and stages
    added after the saved ones (the saved stages first, in their order)."""
    before = [name for name, stage in (saved.get("stages") or {}).items() if stage is not None]
    now = list(enabled_stages(cfg.stages))
    added = now[len(before) :] if now[: len(before)] == before else []
    return tuple(f"stages.{name}.epochs" for name in before) + tuple(f"stages.{name}." for name in added)


def _is_extension(key: str, extension: tuple[str, ...]) -> bool:
    """`key` is one of the extension's keys (an added stage's own key is `stages.<name>`
    in a checkpoint that held it as null)."""
    return key.startswith(extension) or f"{key}." in extension


def check_resumable(cfg: DictConfig, saved: dict, ckpt_path: str) -> None:
    """Resuming continues the saved run, so what it learns from must be what it learned from."""
    now = flatten(plain_values(cfg))
    before = flatten(saved)
    extension = extension_keys(cfg, saved)
    changed = sorted(
        key
        for key in now.keys() | before.keys()
        if not key.startswith(PER_INVOCATION) and not _is_extension(key, extension) and now.get(key) != before.get(key)
    )
    if changed:
        overrides = " ".join(f"{key}={before.get(key)}" for key in changed)
        raise ConfigError(
            "ckpt_path",
            ckpt_path,
            f"the checkpoint's run used other settings; resume with the same ones: {overrides} "
            "(or train=false to only evaluate it)",
        )
