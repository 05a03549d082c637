"""Who a sweep job is, for its tracked run's name and tags: the values it was given
for the swept keys (`lr=0.003,batch_size=64`), and its Optuna study and trial."""

from __future__ import annotations

import logging

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from qtrain.sweep.space import model_space

log = logging.getLogger("qtrain")


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies, read in the launcher: the command line's sweeps
    (`optimizer=adam,sgd`, `optimizer.lr=interval(...)`) and the sweeper's params that
    the model has."""
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.key_or_group for o in overrides if o.is_sweep_override()]
    return list(dict.fromkeys(keys + list(model_space(config))))


def job_name(overrides: list[str], swept: list[str]) -> str:
    """The job's values of the swept keys, short: `lr=0.00316,batch_size=64`."""
    values = dict(item.lstrip("+~").split("=", 1) for item in overrides if "=" in item)
    chosen = [key for key in swept if key in values] or list(values)
    return ",".join(f"{key.rsplit('.', 1)[-1]}={_short(values[key])}" for key in chosen)


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "e" not in value.lower() else f"{number:.3g}"


def optuna_trial(sweeper: DictConfig, overrides: list[str]) -> dict[str, str]:
    """Tags naming the Optuna study and the trial this job runs, found among the study's
    running trials by its parameters (the sweeper passes them as `key=value`)."""
    study_name, storage = sweeper.get("study_name"), sweeper.get("storage")
    if not (study_name and storage):
        return {}
    import optuna  # only in sweep jobs

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception as error:  # noqa: BLE001 -- a tag is never why a job fails
        log.info("Optuna trial not tagged: %s", error)
        return {}
    given = set(overrides)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if {f"{name}={value}" for name, value in trial.params.items()} <= given:
            return {"optuna.study": study_name, "optuna.trial": str(trial.number)}
    return {"optuna.study": study_name}
