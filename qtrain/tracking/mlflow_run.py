"""One MLflow run per training run: the config as params, per-epoch metrics, the run
directory's files as artifacts; nested under its sweep's parent run in a multirun.

Tracking is never why a run fails: the first MLflow error is one warning, and the run
goes on untracked (its run directory is the record).
"""

from __future__ import annotations

import logging
import numbers
import os
import uuid
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH
from omegaconf import DictConfig, OmegaConf

from qtrain.config_checks import flatten
from qtrain.tracking.tracker import Tracker

log = logging.getLogger("qtrain")

# Opens the MLflow UI on the runs table rather than the GenAI overview.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
SWEEP_TAG = "qtrain.sweep"  # the sweep directory, shared by a sweep's parent and its jobs
PARENT_ROLE = {"qtrain.role": "sweep"}  # on the parent only: jobs of a parallel launcher run beside it
RUN_DIR_FILES = ("metrics.json", "history.csv", "report.txt", "plots", ".hydra")


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


def sweep_parent(client: MlflowClient, experiment_id: str, sweep: str) -> str | None:
    """The id of the running parent run of `sweep`, if its launcher opened one."""
    ((role, value),) = PARENT_ROLE.items()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{role}` = '{value}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def sweep_id(hydra_cfg: DictConfig) -> str:
    return str(Path(hydra_cfg.sweep.dir).resolve())


def ui_hint(uri: str, experiment_id: str, run_id: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"make mlflow-ui (mlflow ui --backend-store-uri {uri}), then open run {run_id}"


def config_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as dotted keys, cut to MLflow's key and value limits."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    return {key[:MAX_ENTITY_KEY_LENGTH]: str(value)[:MAX_PARAM_VAL_LENGTH] for key, value in flat.items()}


class MlflowTracker(Tracker):
    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None = None,
        log_checkpoint: bool = False,
        http_timeout_s: int = 10,
        http_retries: int = 1,
    ):
        self.uri, self.experiment, self.run_name = uri, experiment, run_name
        self.log_checkpoint = log_checkpoint
        self.http = (http_timeout_s, http_retries)
        self.enabled = True  # until the first MLflow error
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    def _guard(self, action: str, call, *args, **kwargs):
        """Run an MLflow call; on the first failure, warn once and stop tracking."""
        if not self.enabled:
            return None
        try:
            return call(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 -- any store, network or server error
            log.warning(
                "MLflow tracking at %s failed while %s (%s: %s); the run goes on untracked",
                self.uri,
                action,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            self.enabled = False
            return None

    def begin(self, cfg: DictConfig, run_dir: Path) -> None:
        connected = self._guard("connecting", connect, self.uri, self.experiment, *self.http)
        if connected is None:
            return
        self.client, self.experiment_id = connected
        tags = self._tags(cfg, run_dir)
        run = self._guard(
            "creating the run", self.client.create_run, self.experiment_id, tags=tags, run_name=self._name(cfg)
        )
        if run is None:
            return
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in config_params(cfg).items()]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self._guard(
                "logging params",
                self.client.log_batch,
                self.run_id,
                params=params[start : start + MAX_PARAMS_TAGS_PER_BATCH],
            )
        log.info("MLflow run %s: %s", run.info.run_name, ui_hint(self.uri, self.experiment_id, self.run_id))

    def _name(self, cfg: DictConfig) -> str:
        if self.run_name:
            return self.run_name
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        # An evaluation from a checkpoint has no model choice: its config comes from the file.
        model = choices.get("model") or cfg.model._target_.rsplit(".", 1)[-1]
        return f"{model}-{cfg.dataset.name}-{uuid.uuid4().hex[:6]}"

    def _tags(self, cfg: DictConfig, run_dir: Path) -> dict[str, str]:
        tags = {"qtrain.run_dir": str(run_dir.resolve())}
        backend = OmegaConf.select(cfg, "model.quantum.backend")
        if backend is not None:
            tags["quantum.backend"] = backend
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            tags["hydra.overrides"] = " ".join(hydra_cfg.overrides.task) or "(none)"
            if hydra_cfg.mode == RunMode.MULTIRUN:
                tags[SWEEP_TAG] = sweep_id(hydra_cfg)
                parent = self._guard(
                    "finding the sweep's run", sweep_parent, self.client, self.experiment_id, tags[SWEEP_TAG]
                )
                if parent is not None:
                    tags[MLFLOW_PARENT_RUN_ID] = parent
        return resolve_tags(tags)  # adds user, source and git commit

    def log_epoch(self, row: dict) -> None:
        if self.run_id is None:
            return
        step = row["step"]
        metrics = [Metric(k, float(v), 0, step) for k, v in row.items() if _is_number(v) and k != "step"]
        self._guard("logging metrics", self.client.log_batch, self.run_id, metrics=metrics)

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        if self.run_id is None:
            return
        final = [Metric(k, float(v), 0, 0) for k, v in metrics.items() if _is_number(v)]
        self._guard("logging final metrics", self.client.log_batch, self.run_id, metrics=final)
        for name in RUN_DIR_FILES:
            path = run_dir / name
            if path.is_dir():
                self._guard(f"uploading {name}", self.client.log_artifacts, self.run_id, str(path), name)
            elif path.is_file():
                self._guard(f"uploading {name}", self.client.log_artifact, self.run_id, str(path))
        best = run_dir / "checkpoints" / "best.pt"
        if self.log_checkpoint and best.is_file():
            self._guard("uploading best.pt", self.client.log_artifact, self.run_id, str(best), "checkpoints")

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self._guard("closing the run", self.client.set_terminated, self.run_id, status)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
