"""Where a run is recorded: connecting to an MLflow store, the tags that tie a sweep's
jobs to its parent run, and the UI links qtrain prints."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from omegaconf import DictConfig

from qtrain.tracking.redact import redact

# Older MLflow UIs read this tag to open an experiment on its runs table; 3.17 reads the
# `workflowType` of the link instead (LANDING), which the links qtrain prints carry.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
LANDING = "?workflowType=machine_learning"
RUN_DIR_TAG = "qtrain.run_dir"  # the run directory, which `python -m qtrain.tracking.sync` finds a run by
SWEEP_TAG = "qtrain.sweep"  # the sweep directory, shared by a sweep's parent and its jobs
SWEPT_TAG = "qtrain.swept"  # on the parent: the keys the sweep varies, which name its jobs
PARENT_ROLE = {"qtrain.role": "sweep"}  # on the parent only: jobs of a parallel launcher run beside it


def connect(uri: str, experiment: str, http_timeout_s: int, http_retries: int) -> tuple[MlflowClient, str]:
    """A client for `uri` and the id of `experiment`, created (and tagged) if new."""
    # MLflow's defaults retry an unreachable server for minutes before giving up.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(http_timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(http_retries))
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return client, found.experiment_id
    return client, client.create_experiment(experiment, tags=EXPERIMENT_KIND)


def sweep_parent(client: MlflowClient, experiment_id: str, sweep: str) -> Run | None:
    """The running parent run of `sweep`, if its launcher opened one."""
    ((role, value),) = PARENT_ROLE.items()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{role}` = '{value}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def sweep_id(hydra_cfg: DictConfig) -> str:
    return str(Path(hydra_cfg.sweep.dir).resolve())


def ui_hint(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """Where to see a run (or, without `run_id`, the experiment's runs table) in the UI."""
    page = f"#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "") + LANDING
    if uri.startswith(("http://", "https://")):
        return redact(f"{uri.rstrip('/')}/{page}")
    return f"make mlflow-ui (mlflow ui --backend-store-uri {redact(uri)}), then http://127.0.0.1:5000/{page}"
