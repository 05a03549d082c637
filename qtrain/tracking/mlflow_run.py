"""One MLflow run per training run: the config and group choices as params, per-epoch
metrics, system metrics, the run directory's files as artifacts and its plots as
images; nested under its sweep's parent run in a multirun.

Tracking is never why a run fails: the first MLflow error is one warning and the run
goes on; at its end the tracker tries once more to send what is missing and close the
run, and otherwise says how to upload it later (`python -m qtrain.tracking.sync`).
"""

from __future__ import annotations

import errno
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)
from PIL import Image

from qtrain.config.schema import flatten
from qtrain.errors import DiskFull
from qtrain.files import bytes_in
from qtrain.tracking import sweep_job
from qtrain.tracking.mlflow_store import RUN_DIR_TAG, SWEEP_TAG, SWEPT_TAG, connect, sweep_id, sweep_parent, ui_hint
from qtrain.tracking.redact import redact
from qtrain.tracking.tracker import Tracker, numbers_of

log = logging.getLogger("qtrain")

RUN_DIR_FILES = ("metrics.json", "history.csv", "report.txt", "model_info.json", "plots")
HYDRA_DIR = ".hydra"  # the composed config: uploaded with passwords redacted


def config_params(config: dict, choices: dict | None = None) -> dict[str, str]:
    """The resolved config as dotted keys and the config groups' choices (model=simple_cnn;
    a group mounted elsewhere by its name, `quantum` for `quantum@model.quantum`: MLflow
    refuses `@` in a key), passwords redacted, cut to MLflow's key and value limits."""
    flat = flatten(config)
    picked = {group.split("@")[0]: value for group, value in (choices or {}).items() if value is not None}
    flat |= {group: value for group, value in picked.items() if "/" not in group}
    return {key[:MAX_ENTITY_KEY_LENGTH]: redact(str(value))[:MAX_PARAM_VAL_LENGTH] for key, value in flat.items()}


class MlflowTracker(Tracker):
    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None = None,
        log_checkpoint: bool = False,
        log_model: bool = False,
        system_metrics: bool = True,
        http_timeout_s: int = 10,
        http_retries: int = 1,
    ):
        self.uri, self.experiment, self.run_name = uri, experiment, run_name
        self.log_checkpoint, self.model_wanted, self.system_metrics = log_checkpoint, log_model, system_metrics
        self.http = (http_timeout_s, http_retries)
        self.enabled = True  # until an MLflow error; the end of the run tries once more
        self.failed = False
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.monitor = None
        self.unsent: list[dict] = []  # history rows not yet logged
        self.results: dict[str, float] | None = None

    def _guard(self, action: str, call, *args, uploading: tuple[Path, str] | None = None, **kwargs):
        """Run an MLflow call; on the first failure, warn once and stop sending until the end.
        A call `uploading` a file or folder (as an artifact path) to a store on a full local
        disk stops the run instead (DiskFull): waiting makes no space."""
        if not self.enabled:
            return None
        try:
            return call(*args, **kwargs)
        except OSError as error:
            if uploading is None or error.errno not in (errno.ENOSPC, errno.EDQUOT):
                return self._failed(action, error)
            store = self._artifact_folder()
            raise DiskFull(
                store / uploading[1], bytes_in(uploading[0]), shutil.disk_usage(store).free,
                f"upload what is missing: python -m qtrain.tracking.sync {self.run_dir}",
            ) from None  # fmt: skip
        except Exception as error:  # noqa: BLE001 -- any store, network or server error
            return self._failed(action, error)

    def _failed(self, action: str, error: Exception) -> None:
        if not self.failed:
            log.warning(
                "MLflow tracking at %s failed while %s (%s: %s); the run goes on, tracking tries again at its end",
                redact(self.uri),
                action,
                type(error).__name__,
                redact(str(error).splitlines()[0]) if str(error) else "",
            )
        self.enabled, self.failed = False, True

    def _artifact_folder(self) -> Path:
        """The local folder of this run's artifacts (an upload hit a full disk: the store is local)."""
        return Path(urlparse(self.client.get_run(self.run_id).info.artifact_uri).path)

    def begin(self, config: dict, run_dir: Path) -> None:
        self.run_dir = run_dir
        connected = self._guard("connecting", connect, self.uri, self.experiment, *self.http)
        if connected is None:
            return
        self.client, self.experiment_id = connected
        tags, name = self._tags_and_name(config, run_dir)
        run = self._guard("creating the run", self.client.create_run, self.experiment_id, tags=tags, run_name=name)
        if run is None:
            return
        self.run_id = run.info.run_id
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        params = [Param(k, v) for k, v in config_params(config, choices).items()]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            batch = params[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            self._guard("logging params", self.client.log_batch, self.run_id, params=batch)
        if self.system_metrics and self.enabled:
            self.monitor = self._guard("starting system metrics", _start_system_metrics, self.run_id, self.uri)
        log.info("MLflow run %s: %s", run.info.run_name, ui_hint(self.uri, self.experiment_id, self.run_id))

    def attach(self, run_dir: Path) -> int:
        """Continue the run that began `run_dir`, if the store has one; the last step it
        has metrics of (-1: none, or no such run)."""
        self.run_dir = run_dir
        connected = self._guard("connecting", connect, self.uri, self.experiment, *self.http)
        if connected is None:
            return -1
        self.client, self.experiment_id = connected
        runs = self._guard(
            "finding the run",
            self.client.search_runs,
            [self.experiment_id],
            filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir.resolve()}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return -1
        self.run_id = runs[0].info.run_id
        # Every history row has train/loss; system metrics count their own steps.
        return max((m.step for m in self.client.get_metric_history(self.run_id, "train/loss")), default=-1)

    def _tags_and_name(self, config: dict, run_dir: Path) -> tuple[dict[str, str], str]:
        tags = {RUN_DIR_TAG: str(run_dir.resolve())}
        backend = flatten(config).get("model.quantum.backend")
        if backend is not None:
            tags["quantum.backend"] = backend
        # An evaluation from a checkpoint has no model choice: its config comes from the file.
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        model = choices.get("model") or config["model"]["_target_"].rsplit(".", 1)[-1]
        name = f"{model}-{config['dataset']['name']}-{uuid.uuid4().hex[:6]}"
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            overrides = list(hydra_cfg.overrides.task)
            tags["hydra.overrides"] = redact(" ".join(overrides)) or "(none)"
            if hydra_cfg.mode == RunMode.MULTIRUN:
                tags[SWEEP_TAG] = sweep_id(hydra_cfg)
                tags |= sweep_job.optuna_trial(hydra_cfg)
                parent = self._guard(
                    "finding the sweep's run", sweep_parent, self.client, self.experiment_id, tags[SWEEP_TAG]
                )
                swept = list(hydra_cfg.sweeper.get("params") or {})
                if parent is not None:
                    tags[MLFLOW_PARENT_RUN_ID] = parent.info.run_id
                    swept = parent.data.tags.get(SWEPT_TAG, "").split() or swept
                name = redact(sweep_job.job_name(overrides, swept)) or name
        return resolve_tags(tags), self.run_name or name  # resolve_tags adds user, source and git commit

    def log_epoch(self, row: dict) -> None:
        self.unsent.append(row)
        self._send_rows()

    def _send_rows(self) -> None:
        if self.run_id is None or not self.enabled:
            return
        metrics = [
            Metric(k, v, 0, row["step"]) for row in self.unsent for k, v in numbers_of(row).items() if k != "step"
        ]
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            batch = metrics[start : start + MAX_METRICS_PER_BATCH]
            self._guard("logging metrics", self.client.log_batch, self.run_id, metrics=batch)
        if self.enabled:
            self.unsent.clear()

    def log_model(self, model, data) -> None:
        if self.model_wanted and self.run_id is not None:
            from qtrain.tracking.mlflow_model import log_pytorch_model  # MLflow's model flavours load slowly

            example = next(iter(data.eval_batches("test", limit=1)))[0]
            self._guard("logging the model", log_pytorch_model, self.client, self.run_id, model, example)

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        self.results = numbers_of(metrics)
        self._send_results()

    def _send_results(self) -> None:
        if self.run_id is None or self.results is None:
            return
        final = [Metric(k, v, 0, 0) for k, v in self.results.items()]
        self._guard("logging final metrics", self.client.log_batch, self.run_id, metrics=final)
        for name in RUN_DIR_FILES:
            path = self.run_dir / name
            if path.is_dir():
                upload = self.client.log_artifacts, self.run_id, str(path), name
            elif path.is_file():
                upload = self.client.log_artifact, self.run_id, str(path)
            else:
                continue
            self._guard(f"uploading {name}", *upload, uploading=(path, name))
        with tempfile.TemporaryDirectory() as folder:
            for file in sorted((self.run_dir / HYDRA_DIR).glob("*.yaml")):
                (Path(folder) / file.name).write_text(redact(file.read_text()))
            self._guard(
                f"uploading {HYDRA_DIR}", self.client.log_artifacts, self.run_id, folder, HYDRA_DIR,
                uploading=(Path(folder), HYDRA_DIR),
            )  # fmt: skip
        # As MLflow images too, so that the UI's image grid shows runs' plots side by side.
        for plot in sorted((self.run_dir / "plots").glob("*.png")):
            image = np.asarray(Image.open(plot).convert("RGB"))
            self._guard(
                f"logging {plot.name}", self.client.log_image, self.run_id, image, key=plot.stem, step=0,
                uploading=(plot, f"images/{plot.name}"),
            )  # fmt: skip
        best = self.run_dir / "checkpoints" / "best.pt"
        if self.log_checkpoint and best.is_file():
            self._guard(
                "uploading best.pt", self.client.log_artifact, self.run_id, str(best), "checkpoints",
                uploading=(best, "checkpoints/best.pt"),
            )  # fmt: skip

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.run_id is not None:
            for key, value in tags.items():
                self._guard(f"tagging {key}", self.client.set_tag, self.run_id, key, value)

    def end(self, status: str) -> None:
        if self.monitor is not None:
            self._guard("stopping system metrics", self.monitor.finish)
        if self.run_id is not None and not self.enabled:
            self.enabled = True  # the one retry: what the outage kept back, then the status
            self._send_rows()
            self._send_results()
        if self.run_id is not None:
            self._guard("closing the run", self.client.set_terminated, self.run_id, status)
        if not self.enabled:
            log.warning(
                "MLflow run %s is not complete at %s; when the server is back: python -m qtrain.tracking.sync %s",
                self.run_id or "(not created)",
                redact(self.uri),
                self.run_dir,
            )


def _start_system_metrics(run_id: str, uri: str):
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    return monitor
