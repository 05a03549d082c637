"""The search space a sweep's model has. One space serves every model
(conf/hparams_search): a key under a part the model lacks, `model.quantum.*` for a
classical model, is left out by qtrain's Optuna sweeper. Hydra's defaults list could
pick a space only by the model's name, one file per model, not by what it has."""

from __future__ import annotations

from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from qtrain.errors import ConfigError, refuse_in_callback

PARAMS = "hydra.sweeper.params"


def model_space(config: DictConfig) -> dict[str, Any]:
    """The params whose keys the composed config has. A key missing from a part that
    exists is a typo, refused; a space none of whose keys the model has is refused."""
    params = OmegaConf.to_container(config.hydra.sweeper.get("params") or {})
    kept = {key: space for key, space in params.items() if _has(config, key)}
    if params and not kept:
        raise ConfigError(
            "model",
            config.hydra.runtime.choices.get("model"),
            f"has none of the keys {PARAMS} searches ({', '.join(params)}); "
            f"the models that have them: {', '.join(models_with(config, list(params)))}",
        )
    return kept


def _has(config: DictConfig, key: str) -> bool:
    """Whether `key` (dotted, maybe `+`/`~` prefixed) is one to search in `config`."""
    if key.startswith(("+", "~")):
        return True  # an addition or deletion: Hydra checks it in each trial
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    if not isinstance(node, DictConfig):
        return False  # the model has no such part
    if name not in node:
        raise ConfigError.unknown_key(
            f"{PARAMS}.{key}", config.hydra.sweeper.params[key], list(node), "a key to search"
        )
    return True


def models_with(config: DictConfig, keys: list[str]) -> list[str]:
    """The model choices whose composed config has every one of `keys` (the run's other
    choices kept)."""
    loader = GlobalHydra.instance().config_loader()
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    kept = [o.input_line for o in overrides if not o.is_sweep_override() and o.key_or_group != "model"]

    def has_all(model: str) -> bool:
        composed = loader.load_sweep_config(config, [*kept, f"model={model}"])
        return all(OmegaConf.select(composed, key) is not None for key in keys)

    return [model for model in loader.get_group_options("model") if has_all(model)]


def check_pruner(config: DictConfig) -> None:
    """A pruner needs an objective the run reports after every epoch (`val/<metric>_best`)."""
    pruner = config.hydra.sweeper.get("pruner")
    if pruner is None or pruner.get("_target_") == "optuna.pruners.NopPruner" or "objective" not in config:
        return
    from qtrain.tasks import task_class  # torch loads for a sweep, not for `--help`

    reported = [f"val/{metric}_best" for metric in task_class(config.task._target_).best]
    if config.objective not in reported:
        choice = config.hydra.runtime.choices.get("hydra/sweeper/pruner", pruner._target_)
        raise ConfigError(
            "objective",
            config.objective,
            f"hydra/sweeper/pruner={choice} prunes on a value reported after every epoch: "
            f"use one of {', '.join(reported)}, or hydra/sweeper/pruner=none",
        )


class SearchSpaceCallback(Callback):
    """Refuses a space the model cannot take, or a pruner its objective cannot feed,
    before the sweep writes anything (the sweeper is built after the callbacks that make
    the sweep's folder and databases)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            model_space(config)
            check_pruner(config)
        except ConfigError as error:
            refuse_in_callback(error)
