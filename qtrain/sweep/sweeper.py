"""qtrain's Optuna sweeper: Hydra's, with every slot kept busy and trials pruned.

Hydra's Optuna sweeper asks Optuna for `n_jobs` trials, launches them as one batch and
waits for the slowest before asking again (hydra#3091, closed as not planned); it cannot
prune (hydra#1954). This one keeps `n_jobs` trials in flight: the moment one ends, its
result is told to the study and the next trial is asked and launched. Each launch is
one job handed to the configured launcher from its own thread (the joblib and submitit
launchers wait on a worker process or a cluster job there); the basic launcher runs a
job in this process, where only the main thread may set signal handlers, so it runs
one trial at a time. Each job is told its trial number (in its environment, through
`hydra.job.env_set`): it reports its objective after every epoch to that trial and
stops when the pruner says so (qtrain.sweep.trial). The search space is the part of
`params` the model has (qtrain.sweep.space). A launch is recorded in the study, and a
launch whose sweeper died is finished by the same command (qtrain.sweep.launches).

`python -m qtrain` registers this sweeper with Hydra's plugins (qtrain.__main__); an
entry point would make every Hydra app in the environment import qtrain.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import socket
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig, OmegaConf

from qtrain.config.targets import SWEEP_TARGETS
from qtrain.errors import ConfigError, TrialPruned
from qtrain.sweep.distributions import grid_values, search_space, suggest
from qtrain.sweep.launches import (
    HEARTBEAT_S,
    Launch,
    command_of,
    interrupted_launch,
    new_launch,
    open_trial,
    slurm_job_result,
    slurm_job_waits_or_runs,
    stop_orphan,
)
from qtrain.sweep.space import model_space
from qtrain.sweep.storage import OUTAGE_S, study_storage
from qtrain.tracking.sweep_job import TRIAL_VARIABLE

log = logging.getLogger("qtrain")


class QtrainOptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: str | list[str],
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        storage_outage_s: float = OUTAGE_S,
        custom_search_space: str | None = None,
        params: DictConfig | None = None,
    ):
        for key, value, ok in (
            ("n_trials", n_trials, isinstance(n_trials, int) and n_trials > 0),
            ("n_jobs", n_jobs, isinstance(n_jobs, int) and n_jobs > 0),
        ):
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}", value, "must be a positive integer")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ConfigError("hydra.sweeper.max_failure_rate", max_failure_rate, "must be in [0, 1]")
        with execution_whitelist(SWEEP_TARGETS):
            self.sampler, self.pruner = instantiate(sampler), instantiate(pruner)
        self.extend_space: Callable | None = None
        if custom_search_space:  # named by the sweep's own config, as Hydra's Optuna sweeper takes it
            with execution_whitelist(custom_search_space):
                self.extend_space = instantiate({"_target_": custom_search_space, "_partial_": True})
        self.directions = [direction] if isinstance(direction, str) else list(direction)
        self.storage, self.study_name, self.params = storage, study_name, params
        self.storage_outage_s = storage_outage_s
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        space = model_space(config)
        left_out = [key for key in config.hydra.sweeper.params or {} if key not in space]
        if left_out:
            log.info(
                "model=%s has no %s: the search leaves them out",
                config.hydra.runtime.choices.get("model"),
                ", ".join(left_out),
            )
        self.params = space
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        # Which launcher: the choice of the hydra/launcher group (`basic` runs jobs in this process).
        self.in_process = config.hydra.runtime.choices.get("hydra/launcher") == "basic"

    def sweep(self, arguments: list[str]) -> None:
        searched, fixed, deletions = search_space([f"{key}={value}" for key, value in self.params.items()] + arguments)
        for key in fixed:
            searched.pop(key, None)
        n_trials = self.n_trials
        if isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler:
            grid = {key: grid_values(space) for key, space in searched.items()}
            self.sampler = self.sampler(grid)  # the grid is known now: a partial until here
            points = math.prod(len(values) for values in grid.values())
            n_trials = min(n_trials, points)
            log.info("the grid has %d points: %d trials", points, n_trials)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=study_storage(self.storage, self.storage_outage_s) if self.storage else None,
            sampler=self.sampler,
            pruner=self.pruner,
            directions=self.directions,
            load_if_exists=True,
        )
        slots = 1 if self.in_process else self.n_jobs
        if self.in_process and self.n_jobs > 1:
            log.info("the basic launcher runs one job at a time; hydra/launcher=joblib runs %d at once", self.n_jobs)
        log.info("Study name: %s", study.study_name)
        log.info("Storage: %s", self.storage)
        log.info("Sampler: %s; pruner: %s", type(self.sampler).__name__, type(self.pruner).__name__)
        log.info("Directions: %s", self.directions)
        log.info("%d trials, %d in flight at once", n_trials, slots)
        self.rdb = study_storage(self.storage, self.storage_outage_s) if self.storage else None  # trials by number
        launch = self._launch_record(study, n_trials)
        trials = Trials(study, launch, self.max_failure_rate)
        with ThreadPoolExecutor(slots) if slots > 1 else InThisThread() as pool:
            space = (searched, fixed, deletions)
            running = self._take_up_running(study, launch, trials, pool, space)
            while running or trials.more_to_ask():
                while len(running) < slots and trials.more_to_ask():
                    trial = trials.ask()
                    running[self._submit(pool, self._trial_overrides(trial, *space))] = trial
                done, _ = wait(running, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
                launch.save(study)  # the heartbeat: this sweep is alive
                for future in done:
                    trials.tell(running.pop(future), future)
        launch.finished = True
        launch.save(study)
        trials.raise_if_too_many_failed()
        self._save_results(study)

    def _launch_record(self, study: optuna.Study, n_trials: int) -> Launch:
        """This launch: the interrupted one of the same command that ContinueSweepCallback
        moved this sweep's folder to, or a new one."""
        sweep_dir = str(Path(self.config.hydra.sweep.dir).resolve())
        launch = interrupted_launch(study, command_of(self.config))
        if launch is None or launch.sweep_dir != sweep_dir:
            launch = new_launch(study, command_of(self.config), n_trials, sweep_dir)
        else:
            launch.host, launch.pid = socket.gethostname(), os.getpid()
            folders = [int(path.name) for path in Path(sweep_dir).iterdir() if path.name.isdigit()]
            self.job_idx = max(folders, default=-1) + 1  # new jobs in new folders
        launch.save(study)
        return launch

    def _submit(self, pool, overrides: list[str]) -> Future:
        # In this thread's context: Hydra's execution whitelist (a context variable) holds
        # in the launcher's thread as it does here.
        future = pool.submit(contextvars.copy_context().run, self._launch, overrides, self.job_idx)
        self.job_idx += 1
        return future

    def _take_up_running(self, study: optuna.Study, launch: Launch, trials: Trials, pool, space) -> dict:
        """The trials an interrupted launch left RUNNING: a SLURM job still queued or
        running is awaited; any other is retried with its parameters, from its last.pt
        where it has one, and the dead attempt is marked FAIL with `qtrain.retried_as`."""
        running = {}
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number in list(launch.trials):
            dead = by_number[number]
            if dead.state != optuna.trial.TrialState.RUNNING:
                continue
            job = dead.user_attrs.get("qtrain.slurm_job_id")
            if job and slurm_job_waits_or_runs(job):
                log.info("trial %d: adopting SLURM job %s, still running", number, job)
                folder = str(self.config.hydra.launcher.submitit_folder).replace("%j", job.split("_")[0])
                running[pool.submit(slurm_job_result, folder, job)] = open_trial(study, self.rdb, number)
                continue
            stop_orphan(dead)
            retry = trials.retry(dead, self.rdb)
            overrides = self._trial_overrides(retry, *space)
            last = Path(dead.user_attrs.get("qtrain.run_dir", "/nonexistent"), "checkpoints", "last.pt")
            if last.is_file():
                overrides.append(f"ckpt_path={last}")
            log.info(
                "trial %d died with the sweep: retried as trial %d%s",
                number,
                retry.number,
                f" from {last}" * last.is_file(),
            )
            running[self._submit(pool, overrides)] = retry
        return running

    def _launch(self, overrides: list[str], job_idx: int) -> JobReturn:
        (job,) = self.launcher.launch([overrides], initial_job_idx=job_idx)
        return job

    def _trial_overrides(self, trial: optuna.Trial, searched: dict, fixed: dict, deletions: list[str]) -> list[str]:
        """The job's overrides: the trial's suggested values, the fixed ones, the
        deletions, and its trial number for the job's own reports."""
        for key, space in searched.items():
            suggest(trial, key, space)
        for key, value in fixed.items():
            trial.set_user_attr(key, value)
        if self.extend_space is not None:
            self.extend_space(self.config, trial)
        overlap = trial.params.keys() & fixed.keys()
        if overlap:
            raise ConfigError("hydra.sweeper.params", sorted(overlap), "both searched and fixed: give one")
        values = {**trial.params, **fixed}
        return [
            *(f"{key}={value}" for key, value in values.items()),
            *deletions,
            f"+hydra.job.env_set.{TRIAL_VARIABLE}={trial.number}",
        ]

    def _save_results(self, study: optuna.Study) -> None:
        """optimization_results.yaml in the sweep folder, as Hydra's Optuna sweeper writes it."""
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            log.warning("no trial completed: no optimization_results.yaml")
            return
        if len(self.directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info("Best parameters: %s", best.params)
            log.info("Best value: %s", best.value)
        else:
            front = [{"params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": "optuna", "solutions": front}
            log.info("Number of Pareto solutions: %d", len(front))
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


class Trials:
    """The trials of one launch: how many are still to ask, each job's result told to
    the study, and the failures counted over the whole launch (an interrupted launch's
    earlier ones included)."""

    def __init__(self, study: optuna.Study, launch: Launch, max_failure_rate: float):
        self.study, self.launch = study, launch
        # Past this many failures, the launch's failure rate cannot end within the limit.
        self.failures_allowed = int(max_failure_rate * launch.n_trials + 1e-9)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        self.failures = sum(states[n] == optuna.trial.TrialState.FAIL for n in launch.trials)
        self.last_failure: Future | None = None  # the last failed job

    def more_to_ask(self) -> bool:
        more = len(self.launch.trials) < self.launch.n_trials and not self._grid_done()
        return more and self.failures <= self.failures_allowed

    def ask(self) -> optuna.Trial:
        trial = self.study.ask()
        self.launch.trials.append(trial.number)
        self.launch.save(self.study)  # before the job starts: a rerun finds it
        return trial

    def retry(self, dead: optuna.trial.FrozenTrial, storage: optuna.storages.BaseStorage) -> optuna.Trial:
        """A new trial with `dead`'s parameters, in its place in the launch."""
        self.study.enqueue_trial(dead.params, user_attrs={"qtrain.retry_of": dead.number})
        retry = self.study.ask()
        open_trial(self.study, storage, dead.number).set_user_attr("qtrain.retried_as", retry.number)
        self._tell(dead.number, state=optuna.trial.TrialState.FAIL)
        self.launch.trials = [retry.number if n == dead.number else n for n in self.launch.trials]
        self.launch.save(self.study)
        return retry

    def _grid_done(self) -> bool:
        sampler = self.study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(self.study)

    def tell(self, trial: optuna.Trial, job: Future) -> None:
        """Tell the study how the trial's job ended: its objective, PRUNED, or FAIL (the
        job raised; or the launcher did: a SLURM job cancelled or lost)."""
        try:
            value = job.result().return_value  # raises the launcher's or the job's exception
            if isinstance(value, TrialPruned):  # what a job the pruner stopped returns
                self._tell(trial, state=optuna.trial.TrialState.PRUNED)
                log.info("%s", value)
            else:
                self._tell(trial, values=_objective_values(value, len(self.study.directions)))
        except Exception as error:  # noqa: BLE001 -- a failed trial is recorded, and the sweep goes on
            self._tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, error)
            self.failures, self.last_failure = self.failures + 1, job

    def _tell(self, trial: optuna.Trial | int, **outcome) -> None:
        try:
            self.study.tell(trial, **outcome)
        except RuntimeError:  # the trial is told; GridSampler then calls Study.stop(), which only
            if not self._grid_done():  # an objective function may (Hydra's sweeper ignores it too)
                raise

    def raise_if_too_many_failed(self) -> None:
        if self.failures > self.failures_allowed:
            log.error(
                "%d trials failed, more than max_failure_rate allows over %d trials",
                self.failures,
                self.launch.n_trials,
            )
            if self.last_failure is not None:
                _ = self.last_failure.result().return_value  # raises it with its traceback, as Hydra's sweeper does
            raise RuntimeError(f"{self.failures} trials failed")


def _objective_values(value: Any, objectives: int) -> list[float]:
    values = list(value) if objectives > 1 and not isinstance(value, str) else [value]
    if len(values) != objectives:
        raise ValueError(f"the job returned {len(values)} values for {objectives} objectives: {value!r}")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"the job's return value is not a number: {value!r}") from None


class InThisThread(AbstractContextManager):
    """A pool of one slot that runs each job at once, in the calling thread."""

    def submit(self, call: Callable, *args) -> Future:
        future = Future()
        try:
            future.set_result(call(*args))
        except Exception as error:  # noqa: BLE001 -- handed over as a thread pool's future would
            future.set_exception(error)
        return future

    def __exit__(self, *exc) -> None:
        return None
