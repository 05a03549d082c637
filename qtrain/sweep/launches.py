"""A sweep's launches, recorded in its Optuna study: what each command set out to do
(its `n_trials`), where (its sweep folder, host and process), and the trials it ran.
Running the command of a sweep whose process died (SIGKILL, a lost login node) again
finishes that launch, in its folder and under its MLflow parent, instead of starting a
new one; running a finished sweep's command again extends the study by a new launch.

A launch is interrupted when its sweeper process is gone: on this host, its process
id no longer runs; elsewhere, its heartbeat (renewed while the sweep waits on its
trials) is older than STALE_S."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import psutil
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from qtrain.sweep.storage import OUTAGE_S, study_storage

log = logging.getLogger("qtrain")

PREFIX = "qtrain.launch."
HEARTBEAT_S = 30  # how often a running sweep renews its heartbeat
STALE_S = 300  # a launch on another host whose heartbeat is older is taken as dead


@dataclasses.dataclass
class Launch:
    number: int
    command: str
    n_trials: int
    sweep_dir: str
    host: str
    pid: int
    heartbeat: float
    trials: list[int] = dataclasses.field(default_factory=list)
    finished: bool = False

    def save(self, study: optuna.Study) -> None:
        self.heartbeat = time.time()
        study.set_user_attr(f"{PREFIX}{self.number}", dataclasses.asdict(self))

    def alive(self) -> bool:
        if self.host != socket.gethostname():
            return time.time() - self.heartbeat < STALE_S
        return process_runs(self.pid)


def process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def command_of(config: DictConfig) -> str:
    """What makes two launches the same command: the command line's overrides, the
    sweep folder aside (by default a new one each time)."""
    hydra_overrides = [o for o in config.hydra.overrides.hydra if not o.startswith("hydra.sweep.dir=")]
    return " ".join([*config.hydra.overrides.task, *hydra_overrides])


def launches(study: optuna.Study) -> list[Launch]:
    found = [Launch(**value) for key, value in study.user_attrs.items() if key.startswith(PREFIX)]
    return sorted(found, key=lambda launch: launch.number)


def interrupted_launch(study: optuna.Study, command: str) -> Launch | None:
    """The newest unfinished launch of `command` whose sweeper is gone, if any."""
    for launch in reversed(launches(study)):
        if launch.command == command and not launch.finished and not launch.alive():
            return launch
    return None


def new_launch(study: optuna.Study, command: str, n_trials: int, sweep_dir: str) -> Launch:
    number = max((launch.number for launch in launches(study)), default=-1) + 1
    return Launch(number, command, n_trials, str(Path(sweep_dir).resolve()), socket.gethostname(), os.getpid(), 0.0)


def open_trial(study: optuna.Study, storage: optuna.storages.BaseStorage, number: int) -> optuna.Trial:
    """Trial `number` of `study`, to report to or annotate from any process. Optuna opens
    a trial by its id only through the Trial constructor, which its docs reserve for
    Optuna itself; it is the one route for a trial another process asked for."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    return optuna.Trial(study, trial_id)


def slurm_job_waits_or_runs(job: str) -> bool:
    try:
        queued = subprocess.run(
            ["squeue", "--noheader", "--format=%T", "--jobs", job], check=False, capture_output=True, text=True
        )
    except OSError:  # no SLURM here
        return False
    return queued.returncode == 0 and bool(queued.stdout.strip())


def slurm_job_result(folder: str, job: str) -> JobReturn:
    """What a SLURM job another sweep process submitted returns, once it ends."""
    import submitit  # only with hydra/launcher=submitit_slurm

    return submitit.SlurmJob(folder, job).results()[0]


def stop_orphan(dead: optuna.trial.FrozenTrial, wait_s: float = 120) -> None:
    """A job process that outlived its sweep (a joblib worker trains on) is stopped with
    SIGTERM, so that it writes its last.pt and lets the retry resume from it."""
    pid, host = dead.user_attrs.get("qtrain.pid"), dead.user_attrs.get("qtrain.host")
    if pid is None or host != socket.gethostname() or dead.datetime_start is None:
        return
    try:
        process = psutil.Process(pid)
        if process.create_time() > dead.datetime_start.timestamp():
            return  # the id was reused: not the job's process
        log.info("trial %d: stopping its job process %d, which outlived the sweep", dead.number, pid)
        process.terminate()
        process.wait(wait_s)
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        return


class ContinueSweepCallback(Callback):
    """A sweep whose command is that of an interrupted launch goes on in the launch's
    sweep folder, and so under its MLflow parent run (the MLflow callback, after this
    one, finds the parent by the folder)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if not (sweeper.get("storage") and sweeper.get("study_name")):
            return
        try:
            storage = study_storage(sweeper.storage, sweeper.get("storage_outage_s", OUTAGE_S))
            study = optuna.load_study(study_name=sweeper.study_name, storage=storage)
        except KeyError:  # a new study
            return
        launch = interrupted_launch(study, command_of(config))
        if launch is None:
            return
        fresh = Path(config.hydra.sweep.dir)
        if fresh.is_dir() and not any(fresh.iterdir()) and fresh.resolve() != Path(launch.sweep_dir):
            fresh.rmdir()  # made empty by the run-folder check, before this callback
        # The sweep's own config, and each job's: Hydra composes a job's config again from
        # the sweep's overrides, where a default folder would be a new timestamp.
        with read_write(config.hydra):
            config.hydra.sweep.dir = launch.sweep_dir
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir={launch.sweep_dir}")
        log.info(
            "continuing the interrupted sweep in %s (launch %d of study %s: %d trials asked of %d)",
            launch.sweep_dir,
            launch.number,
            study.study_name,
            len(launch.trials),
            launch.n_trials,
        )
