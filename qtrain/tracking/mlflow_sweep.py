"""The parent MLflow run of a sweep, opened and closed in the launcher process (Hydra
callbacks), so that jobs started by any launcher nest under it; at the end it holds
the best job's overrides and objective, and an Optuna sweep's plots of its study."""

from __future__ import annotations

import atexit
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.entities import Metric, Param
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig

from qtrain.tracking.mlflow_store import PARENT_ROLE, SWEEP_TAG, SWEPT_TAG, connect, sweep_id, ui_hint
from qtrain.tracking.redact import redact
from qtrain.tracking.sweep_job import swept_keys

log = logging.getLogger("qtrain")


class MlflowSweepCallback(Callback):
    def __init__(
        self,
        uri: str,
        experiment: str,
        objective: str,
        direction: str,
        http_timeout_s: int = 10,
        http_retries: int = 1,
    ):
        self.uri, self.experiment, self.http = uri, experiment, (http_timeout_s, http_retries)
        self.objective, self.direction = objective, direction
        self.client = self.run_id = None
        self.study: tuple[str, str] | None = None  # an Optuna sweep's (study name, storage)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.client, self.experiment_id = connect(self.uri, self.experiment, *self.http)
            tags = {
                SWEEP_TAG: sweep_id(config.hydra),
                **PARENT_ROLE,
                SWEPT_TAG: " ".join(swept_keys(config)),
                "hydra.overrides": redact(" ".join(config.hydra.overrides.task)) or "(none)",
                "qtrain.objective": f"{self.direction} {self.objective}",
            }
            sweeper = config.hydra.sweeper
            if sweeper.get("study_name") and sweeper.get("storage"):
                self.study = (sweeper.study_name, sweeper.storage)
                tags["optuna.study"] = sweeper.study_name
            run = self._continued(sweep_id(config.hydra))
            if run is None:
                started = time.strftime("%Y%m%d-%H%M%S")
                name = f"sweep-{config.hydra.runtime.choices.model}-{config.dataset.name}-{started}"
                run = self.client.create_run(self.experiment_id, run_name=name, tags=resolve_tags(tags))
        except Exception as error:  # noqa: BLE001 -- tracking is never why a sweep fails
            log.warning("MLflow tracking at %s failed (%s); the sweep goes on untracked", redact(self.uri), error)
            return
        self.run_id = run.info.run_id
        atexit.register(self._end_if_open)  # a sweep that raises never reaches on_multirun_end
        log.info(
            "MLflow sweep run %s, its jobs nested under it: %s",
            run.info.run_name,
            ui_hint(self.uri, self.experiment_id),
        )

    def _continued(self, sweep: str):
        """The parent run of a sweep folder that already has one (a sweep continued after
        its process died, qtrain.sweep.launches), open again."""
        ((role, value),) = PARENT_ROLE.items()
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{role}` = '{value}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        self.client.update_run(runs[0].info.run_id, status="RUNNING")
        log.info("MLflow: the sweep continues its run %s", runs[0].info.run_name)
        return runs[0]

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end("FINISHED", log_best=True)

    def _end_if_open(self) -> None:
        self._end("KILLED" if getattr(sys, "last_type", None) is KeyboardInterrupt else "FAILED", log_best=False)

    def _end(self, status: str, log_best: bool) -> None:
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        if log_best:
            _attempt("logging the best job", self._log_best, run_id)
            _attempt("logging the study's plots", self._log_study_plots, run_id)
        _attempt("closing the sweep run", self.client.set_terminated, run_id, status)

    def _log_best(self, run_id: str) -> None:
        jobs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}'", max_results=10_000
        )
        pruned = sum(job.data.tags.get("optuna.state") == "PRUNED" for job in jobs)
        killed = sum(job.info.status == "KILLED" for job in jobs) - pruned  # stopped: requeued, or Ctrl-C
        failed = sum(job.info.status == "FAILED" for job in jobs)
        self.client.set_tag(run_id, "qtrain.jobs", f"{len(jobs)} ({pruned} pruned, {killed} killed, {failed} failed)")
        scored = [
            job for job in jobs if job.info.status == "FINISHED" and _finite(job.data.metrics.get(self.objective))
        ]
        if not scored:
            return
        pick = max if self.direction == "maximize" else min
        best = pick(scored, key=lambda job: job.data.metrics[self.objective])
        value = best.data.metrics[self.objective]
        overrides = best.data.tags.get("hydra.overrides", "")
        params = [Param(*redact(item).lstrip("+~").split("=", 1)) for item in overrides.split() if "=" in item]
        self.client.log_batch(run_id, metrics=[Metric(self.objective, value, 0, 0)], params=params)
        self.client.set_tag(run_id, "qtrain.best_run", f"{best.info.run_name} ({best.info.run_id})")
        log.info("MLflow: best job %s, %s = %.4f", best.info.run_name, self.objective, value)

    def _log_study_plots(self, run_id: str) -> None:
        if self.study is None:
            return
        import optuna  # only for Optuna sweeps

        from qtrain.sweep.plots import write_study_plots
        from qtrain.sweep.storage import study_storage

        study = optuna.load_study(study_name=self.study[0], storage=study_storage(self.study[1]))
        with tempfile.TemporaryDirectory() as folder:
            if write_study_plots(study, Path(folder)):
                self.client.log_artifacts(run_id, folder, "optuna")


def _attempt(action: str, call, *args) -> None:
    """One step of closing the sweep run: a failure is a warning, and the next step runs."""
    try:
        call(*args)
    except Exception as error:  # noqa: BLE001 -- tracking is never why a sweep fails
        log.warning("MLflow: %s failed (%s: %s)", action, type(error).__name__, redact(str(error)))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
