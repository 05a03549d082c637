"""One MLflow run per training run: the config and group choices as params, per-epoch
metrics, system metrics, the run directory's files as artifacts and its plots as
images; nested under its sweep's parent run in a multirun.

Tracking is never why a run fails: the first MLflow error of an outage is one warning
and the run goes on, holding back what it logs; it tries the server again at later
epochs, after a wait that grows with the outage, and once it is back sends what was held
back, in order and once (a restarted server: the run ends FINISHED, nothing lost). At
its end the tracker tries once more, and otherwise says how to upload the rest later
(`python -m qtrain.tracking.sync`). Only a full disk under a local artifact store stops
the run (DiskFull).
"""

from __future__ import annotations

import errno
import functools
import logging
import shutil
import tempfile
import time
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
FIRST_RETRY_S, LONGEST_RETRY_S = 10, 300  # the waits before trying a lost server again


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
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.monitor = None
        # What the server does not have yet, sent in this order by _flush: the history
        # rows, tags, then the results (the final metrics and the artifacts, each once, by name).
        self.unsent: list[dict] = []
        self.unsent_tags: dict[str, str] = {}
        self.results: dict[str, float] | None = None
        self.results_sent: set[str] = set()
        # An outage: since when the server is unreachable, when to try it again, and
        # whether the rows held back may have reached it before (then those are not sent again).
        self.down_since: float | None = None
        self.next_try = 0.0
        self.rows_may_be_sent = False

    # -- calls ---------------------------------------------------------------------

    def _call(self, action: str, call, *args, uploading: tuple[Path, str] | None = None, **kwargs):
        """An MLflow call; a failure raises Unreachable. An upload (a file or folder, as an
        artifact path) to a store on a full local disk stops the run instead (DiskFull):
        waiting makes no space."""
        try:
            return call(*args, **kwargs)
        except OSError as error:
            if uploading is None or error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise Unreachable(action, error) from None
            store = self._artifact_folder()
            raise DiskFull(
                store / uploading[1], bytes_in(uploading[0]), shutil.disk_usage(store).free,
                f"upload what is missing: python -m qtrain.tracking.sync {self.run_dir}",
            ) from None  # fmt: skip
        except Exception as error:  # noqa: BLE001 -- any store, network or server error
            raise Unreachable(action, error) from None

    def _guard(self, action: str, call, *args, **kwargs):
        """`_call`; None if it failed, which starts an outage (or goes on with one)."""
        try:
            return self._call(action, call, *args, **kwargs)
        except Unreachable as lost:
            self._lost(lost)
            return None

    def _lost(self, lost: Unreachable) -> None:
        now = time.monotonic()
        if self.down_since is None:
            log.warning(
                "MLflow tracking at %s failed while %s; the run goes on, and sends what it logs once the server is back",
                redact(self.uri), lost,
            )  # fmt: skip
            self.down_since = now
        self.rows_may_be_sent = True
        # Tried again at the next epoch after a wait that doubles with the outage, from
        # FIRST_RETRY_S up to LONGEST_RETRY_S: a dead host costs a timeout per try.
        self.next_try = now + min(max(FIRST_RETRY_S, 2 * (now - self.down_since)), LONGEST_RETRY_S)

    def _flush(self, at_the_end: bool = False) -> None:
        """Send what the server lacks. During an outage, only once the wait is over (or
        at the run's end, the last chance)."""
        if self.run_id is None or (self.down_since is not None and not at_the_end and time.monotonic() < self.next_try):
            return
        try:
            if self.rows_may_be_sent:
                self._leave_out_rows_the_server_has()
            held = len(self.unsent)
            self._send_rows()
            self._send_tags()
            self._send_results()
        except Unreachable as lost:
            self._lost(lost)
            return
        if self.down_since is not None:
            log.info(
                "MLflow tracking at %s is back after %.0f s: sent the %d epochs held back",
                redact(self.uri), time.monotonic() - self.down_since, held,
            )  # fmt: skip
            self.down_since = None

    def _leave_out_rows_the_server_has(self) -> None:
        """A row is sent in one request, so the server has all of it or none: the rows up
        to its last step of train/loss (every row has one) are left out."""
        history = self._call("reading the run's history", self.client.get_metric_history, self.run_id, "train/loss")
        sent_until = max((m.step for m in history), default=-1)
        self.unsent = [row for row in self.unsent if row["step"] > sent_until]
        self.rows_may_be_sent = False

    def _send_rows(self) -> None:
        """The rows in order, whole rows in each request, each removed once sent."""
        while self.unsent:
            rows, metrics = 0, []
            for row in self.unsent:
                these = [Metric(k, v, 0, row["step"]) for k, v in numbers_of(row).items() if k != "step"]
                if metrics and len(metrics) + len(these) > MAX_METRICS_PER_BATCH:
                    break
                rows, metrics = rows + 1, metrics + these
            self._call("logging metrics", self.client.log_batch, self.run_id, metrics=metrics)
            del self.unsent[:rows]

    def _send_tags(self) -> None:
        for key, value in list(self.unsent_tags.items()):
            self._call(f"tagging {key}", self.client.set_tag, self.run_id, key, value)
            del self.unsent_tags[key]

    def _send_results(self) -> None:
        if self.results is None:
            return
        for name, send in self._result_parts():
            if name not in self.results_sent:
                send()
                self.results_sent.add(name)

    def _result_parts(self):
        """(name, send) for each part of the results: the final metrics, then the run
        directory's files, its config with passwords redacted, its plots as MLflow
        images, and best.pt if asked for."""
        final = [Metric(k, v, 0, 0) for k, v in self.results.items()]
        yield (
            "final metrics",
            functools.partial(self._call, "logging final metrics", self.client.log_batch, self.run_id, metrics=final),
        )
        for name in RUN_DIR_FILES:
            path = self.run_dir / name
            if path.is_dir():
                yield name, functools.partial(
                    self._call, f"uploading {name}", self.client.log_artifacts, self.run_id, str(path), name,
                    uploading=(path, name),
                )  # fmt: skip
            elif path.is_file():
                yield name, functools.partial(
                    self._call, f"uploading {name}", self.client.log_artifact, self.run_id, str(path),
                    uploading=(path, name),
                )  # fmt: skip
        yield HYDRA_DIR, self._upload_config
        # As MLflow images too, so that the UI's image grid shows runs' plots side by side.
        for plot in sorted((self.run_dir / "plots").glob("*.png")):
            yield f"images/{plot.name}", functools.partial(self._log_image, plot)
        best = self.run_dir / "checkpoints" / "best.pt"
        if self.log_checkpoint and best.is_file():
            yield "checkpoints/best.pt", functools.partial(
                self._call, "uploading best.pt", self.client.log_artifact, self.run_id, str(best), "checkpoints",
                uploading=(best, "checkpoints/best.pt"),
            )  # fmt: skip

    def _upload_config(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            for file in sorted((self.run_dir / HYDRA_DIR).glob("*.yaml")):
                (Path(folder) / file.name).write_text(redact(file.read_text()))
            self._call(
                f"uploading {HYDRA_DIR}", self.client.log_artifacts, self.run_id, folder, HYDRA_DIR,
                uploading=(Path(folder), HYDRA_DIR),
            )  # fmt: skip

    def _log_image(self, plot: Path) -> None:
        image = np.asarray(Image.open(plot).convert("RGB"))
        self._call(
            f"logging {plot.name}", self.client.log_image, self.run_id, image, key=plot.stem, step=0,
            uploading=(plot, f"images/{plot.name}"),
        )  # fmt: skip

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
        if self.system_metrics and self.down_since is None:
            self.monitor = self._guard("starting system metrics", _start_system_metrics, self.run_id, self.uri)
        log.info("MLflow run %s: %s", run.info.run_name, ui_hint(self.uri, self.experiment_id, self.run_id))

    def attach(self, run_dir: Path) -> None:
        """Continue the run that began `run_dir`, if the store has one: the rows it has are
        not sent again."""
        self.run_dir = run_dir
        connected = self._guard("connecting", connect, self.uri, self.experiment, *self.http)
        if connected is None:
            return
        self.client, self.experiment_id = connected
        runs = self._guard(
            "finding the run",
            self.client.search_runs,
            [self.experiment_id],
            filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir.resolve()}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            self.run_id = runs[0].info.run_id
            self.rows_may_be_sent = True

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
        self._flush()

    def log_model(self, model, data) -> None:
        if self.model_wanted and self.run_id is not None:
            from qtrain.tracking.mlflow_model import log_pytorch_model  # MLflow's model flavours load slowly

            example = next(iter(data.eval_batches("test", limit=1)))[0]
            self._guard("logging the model", log_pytorch_model, self.client, self.run_id, model, example)

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        self.results = numbers_of(metrics)
        self._flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        self.unsent_tags |= tags
        self._flush()

    def end(self, status: str) -> None:
        if self.monitor is not None:
            self._guard("stopping system metrics", self.monitor.finish)
        self._flush(at_the_end=True)
        if self.run_id is not None and self.down_since is None:
            self._guard("closing the run", self.client.set_terminated, self.run_id, status)
        if self.down_since is not None:
            log.warning(
                "MLflow run %s is not complete at %s; when the server is back: python -m qtrain.tracking.sync %s",
                self.run_id or "(not created)",
                redact(self.uri),
                self.run_dir,
            )


class Unreachable(Exception):
    """An MLflow call failed: the server (or store) is away, for now."""

    def __init__(self, action: str, error: Exception):
        reason = redact(str(error).splitlines()[0]) if str(error) else ""
        super().__init__(f"{action} ({type(error).__name__}: {reason})")


def _start_system_metrics(run_id: str, uri: str):
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    monitor.start()
    return monitor
