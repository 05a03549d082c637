"""Who a sweep job is, for its tracked run's name and tags: the values it was given
for the swept keys (`lr=0.003,batch_size=64`), its Optuna study and trial, its SLURM job."""

from __future__ import annotations

import os

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from qtrain.sweep.space import model_space

TRIAL_VARIABLE = "QTRAIN_OPTUNA_TRIAL"  # set for each job by qtrain's sweeper: the trial it runs


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


def trial_number(hydra_cfg: DictConfig) -> int | None:
    """The Optuna trial qtrain's sweeper gave this job (in its `hydra.job.env_set`)."""
    number = hydra_cfg.job.env_set.get(TRIAL_VARIABLE)
    return None if number is None else int(number)


def optuna_trial(hydra_cfg: DictConfig) -> dict[str, str]:
    """Tags naming the Optuna study and trial this job runs, and the SLURM job it runs in."""
    tags, sweeper, number = {}, hydra_cfg.sweeper, trial_number(hydra_cfg)
    if sweeper.get("study_name") and sweeper.get("storage"):
        tags["optuna.study"] = sweeper.study_name
        if number is not None:
            tags["optuna.trial"] = str(number)
    job = slurm_job_id()
    return tags | ({"slurm.job_id": job} if job else {})


def slurm_job_id() -> str | None:
    """The SLURM job this process runs in (an array task as `<array>_<task>`), if any."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
