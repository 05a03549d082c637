"""The Optuna trial a sweep job runs, from the job's own process (on any machine that
reaches the study's storage). qtrain's sweeper hands each job its trial number
(`hydra.job.env_set`); the job records where it runs (its run folder, its SLURM job)
in the trial and in the run folder's `optuna_trial.json`, reports its objective after
every epoch, and stops when the sweep's pruner says so.

The step of a report is the epoch counted across stages (1, 2, ... through every stage
of the run), and its value the objective as it stands after that epoch: `val/acc_best`
is the best `val/acc` so far."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.utils import execution_whitelist, instantiate

from qtrain.config.targets import SWEEP_TARGETS
from qtrain.engine.best import best_values
from qtrain.errors import ConfigError, TrialPruned
from qtrain.files import atomic_write
from qtrain.sweep.launches import open_trial
from qtrain.sweep.storage import OUTAGE_S, study_storage
from qtrain.tasks import Task
from qtrain.tracking.redact import redact
from qtrain.tracking.sweep_job import TRIAL_VARIABLE, slurm_job_id, trial_number

TRIAL_FILE = "optuna_trial.json"


class SweepTrial:
    """The job's side of its Optuna trial."""

    def __init__(self, trial: optuna.Trial, number: int, study_name: str, objective: str, task: Task, run_dir: Path):
        self.trial, self.number, self.objective, self.task = trial, number, objective, task
        self.file = run_dir / TRIAL_FILE
        self.record = {"study": study_name, "trial": number, "slurm_job_id": slurm_job_id()}
        where = {"run_dir": str(run_dir.resolve()), "host": socket.gethostname(), "pid": os.getpid()}
        for key, value in {**where, "slurm_job_id": self.record["slurm_job_id"]}.items():
            trial.set_user_attr(f"qtrain.{key}", value)
        self._write()

    def epoch_ended(self, history: list[dict]) -> None:
        """Report the objective after the epoch just ended; raise TrialPruned if the
        pruner stops the trial here."""
        value = best_values(history, self.task).get(self.objective)
        if value is None:
            return
        epoch = len(history)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.record |= {"state": "PRUNED", "pruned_after_epoch": epoch, self.objective: value}
            self._write()
            raise TrialPruned(self.number, epoch, self.objective, value)

    def _write(self) -> None:
        with atomic_write(self.file, "w") as f:
            f.write(json.dumps(self.record, indent=2) + "\n")


def sweep_trial(objective: str, task: Task, run_dir: Path) -> SweepTrial | None:
    """The trial this job runs, or None outside a sweep of qtrain's Optuna sweeper."""
    if not HydraConfig.initialized():
        return None
    sweeper, number = HydraConfig.get().sweeper, trial_number(HydraConfig.get())
    if number is None or not sweeper.get("storage"):
        return None
    with execution_whitelist(SWEEP_TARGETS):
        pruner = instantiate(sweeper.pruner)
    storage = study_storage(sweeper.storage, sweeper.get("storage_outage_s", OUTAGE_S))
    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=pruner)
        trial = open_trial(study, storage, number)
    except KeyError as error:
        raise ConfigError(
            f"hydra.job.env_set.{TRIAL_VARIABLE}", number, f"no such trial in {redact(sweeper.storage)}: {error}"
        ) from None
    return SweepTrial(trial, number, sweeper.study_name, objective, task, run_dir)
