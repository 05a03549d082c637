"""MLflow runs and Optuna sweeps, each against stores in a temporary folder."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import subprocess
from pathlib import Path

import mlflow
import mlflow.pytorch
import optuna
import pytest
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from PIL import Image

import qtrain
from qtrain.config import describe
from qtrain.errors import TrainingDiverged, TrainingInterrupted, TrialPruned
from qtrain.tasks import direction
from qtrain.tracking.mlflow_run import MlflowTracker, config_params
from qtrain.tracking.mlflow_store import PARENT_ROLE, SWEEP_TAG, connect, sweep_parent
from qtrain.tracking.sync import main as sync_main

ROOT = Path(qtrain.CONFIG_DIR).parent  # the repository


def runs_of(uri: str, experiment: str = "qtrain-digits") -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    assert found.tags["mlflow.experimentKind"] == "custom_model_development"
    return client.search_runs([found.experiment_id])


def test_a_run_logs_config_metrics_and_files(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_dir = tmp_path / "run"
    result = run_cli(
        "model=simple_cnn",
        "debug=fast",
        "stages.train.epochs=2",
        "trainer.limit_epochs=2",
        "optimizer.lr=0.002",
        "tracking=mlflow",  # debug presets track nothing unless asked
        f"tracking.mlflow.uri={uri}",
        "tracking.mlflow.log_checkpoint=true",
        "tracking.mlflow.log_model=true",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = runs_of(uri)
    client = MlflowClient(uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("simple_cnn-digits-")
    assert run.data.params["optimizer.lr"] == "0.002"
    # The group choices, as on the command line.
    assert (run.data.params["model"], run.data.params["optimizer"], run.data.params["debug"]) == (
        "simple_cnn",
        "adam",
        "fast",
    )
    assert any(name.startswith("system/cpu_utilization") for name in run.data.metrics)
    assert run.data.params["model._target_"] == "qtrain.models.simple_cnn.SimpleCNN"
    assert run.data.params["stages.train.epochs"] == "2"
    assert "debug=fast" in run.data.tags["hydra.overrides"]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == commit
    # Per epoch, at the global step: debug=fast takes 3 optimizer steps per epoch.
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in history] == [3, 6]
    with open(run_dir / "history.csv") as f:
        assert [m.value for m in history] == pytest.approx([float(row["val/acc"]) for row in csv.DictReader(f)])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "history.csv", "report.txt", "plots", ".hydra", "checkpoints"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, ".hydra")} >= {".hydra/config.yaml"}
    # The plots as MLflow images too, the confusion matrix first among them.
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(path.startswith("images/confusion_matrix") and path.endswith(".png") for path in images), images
    assert "mlflow ui --backend-store-uri" in result.stderr + result.stdout
    # The trained model, as MLflow loads it, is best.pt's weights with its signature.
    model = mlflow.pytorch.load_model(f"{run.info.artifact_uri}/model")
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[k].cpu(), v.cpu()) for k, v in best.items())
    signature = mlflow.models.get_model_info(f"{run.info.artifact_uri}/model").signature
    assert signature.inputs.inputs[0].shape == (
        -1,
        *json.loads((run_dir / "model_info.json").read_text())["input"]["shape"],
    )


def test_config_params_are_dotted_and_cut_to_mlflows_limit(make_config):
    cfg = make_config(
        "model=cnn_quantum",
        "model.quantum.n_qubits=6",
        "dataset.batch_size=64",
        "model.quantum.observables=[" + ",".join(["ZZZZZZ"] * 1500) + "]",
    )
    params = config_params(describe(cfg).values)
    assert params["model.quantum.n_qubits"] == "6"
    assert params["dataset.batch_size"] == "64"
    assert len(params["model.quantum.observables"]) == 6000


def test_unreachable_server_is_one_warning_and_the_run_goes_on(tmp_path, caplog, run_config):
    metrics = run_config(
        tmp_path,
        "model=simple_cnn",
        "debug=fast",
        "tracking=mlflow",
        "tracking.mlflow.uri=http://127.0.0.1:9",  # nothing listens on the discard port
        "tracking.mlflow.http_timeout_s=2",
        "tracking.mlflow.http_retries=0",
    )
    warnings = [r for r in caplog.records if "MLflow tracking at http://127.0.0.1:9 failed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] == metrics["test/acc"]


def test_a_diverged_run_is_marked_failed(tmp_path, run_config):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(TrainingDiverged, match="train/loss=nan in stage train, epoch 1: training diverged"):
        run_config(
            tmp_path / "run",
            "model=simple_cnn",
            "debug=fast",
            "optimizer.lr=1e30",
            "tracking=mlflow",
            f"tracking.mlflow.uri={uri}",
        )
    (run,) = runs_of(uri)
    assert run.info.status == "FAILED"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "FINISHED"),
        (TrainingInterrupted(15, Path("last.pt")), "KILLED"),
        (KeyboardInterrupt(), "KILLED"),
        (SystemExit(-1), "KILLED"),  # submitit exits a job it requeues (SLURM preemption)
        (TrialPruned(3, 2, "val/acc_best", 0.5), "KILLED"),
        (RuntimeError("boom"), "FAILED"),
    ],
)
def test_a_run_ends_with_the_status_of_how_it_ended(tmp_path, error, status, make_config):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri=uri, experiment="qtrain-digits")
    with contextlib.suppress(type(error) if error else ()), tracker.track(make_config("model=simple_cnn"), tmp_path):
        if error is not None:
            raise error
    (run,) = runs_of(uri)
    assert run.info.status == status
    pruned = {"optuna.state": "PRUNED", "optuna.pruned_after_epoch": "2"}
    assert ({k: run.data.tags.get(k) for k in pruned} == pruned) == isinstance(error, TrialPruned)


@pytest.mark.parametrize(
    ("task", "metric", "expected"),
    [
        ("Classification", "val/acc_best", "maximize"),
        ("Classification", "val/loss_best", "minimize"),
        ("Classification", "test/f1_macro", "maximize"),
        ("Regression", "val/mse", "minimize"),
        ("Regression", "test/snr_db", "maximize"),
        ("Regression", "val/corr_best", "maximize"),
    ],
)
def test_objective_direction_follows_the_metric(task, metric, expected):
    assert direction(f"qtrain.tasks.{task}", metric) == expected


@pytest.mark.slow
def test_optuna_sweep_nests_trials_and_records_a_failed_one(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli(
        "-m",
        "hparams_search=optuna",
        "model=simple_cnn",
        "debug=fast",
        "hydra/sweeper/sampler=grid",  # every value once, in a fixed set: one of them diverges
        "hydra.sweeper.params={optimizer.lr:'choice(1e-3,1e30,3e-3)',"
        "optimizer.weight_decay:'choice(0.0)',dataset.batch_size:'choice(64)'}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "tracking=mlflow",
        f"tracking.mlflow.uri={uri}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(uri)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3 and len(runs) == 4
    assert sorted(r.info.status for r in children) == ["FAILED", "FINISHED", "FINISHED"]
    assert sorted(float(r.data.params["optimizer.lr"]) for r in children) == [1e-3, 3e-3, 1e30]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert all("val/acc_best" in r.data.metrics for r in finished)
    best = max(finished, key=lambda r: r.data.metrics["val/acc_best"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["val/acc_best"] == best.data.metrics["val/acc_best"]
    assert float(parent.data.params["optimizer.lr"]) == float(best.data.params["optimizer.lr"])
    study = optuna.load_study(study_name="test", storage=storage)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert study.best_value == best.data.metrics["val/acc_best"]
    # Each child: named after its swept values, tagged with its trial, the group choices as params.
    for child in children:
        trial = study.trials[int(child.data.tags["optuna.trial"])]
        assert child.data.tags["optuna.study"] == "test"
        assert child.info.run_name == f"lr={trial.params['optimizer.lr']:.3g},weight_decay=0.0,batch_size=64"
        assert (child.data.params["model"], child.data.params["hparams_search"]) == ("simple_cnn", "optuna")
    assert sorted(int(c.data.tags["optuna.trial"]) for c in children) == [0, 1, 2]
    # The parent holds Optuna's plots of the study.
    plots = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "optuna")}
    for kind in ("history", "importance", "parallel"):
        assert any(kind in path and path.endswith(".png") for path in plots), plots
        assert any(kind in path and path.endswith(".html") for path in plots), plots
    # The config tree once, from the launcher; a line per job.
    shown = result.stdout + result.stderr
    assert shown.count("── optimizer") == 1
    assert [line.split(" - ")[1].split(":")[0] for line in shown.splitlines() if "[qtrain][INFO] - job " in line] == [
        "job 0",
        "job 1",
        "job 2",
    ]


def test_malformed_search_space_names_the_key(tmp_path, run_cli):
    result = run_cli(
        "-m",
        "hparams_search=optuna",
        "model=simple_cnn",
        "hydra.sweeper.params={optimizer.lr:'interval(1e-4'}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "optimizer.lr=interval(1e-4" in result.stderr
    assert not (tmp_path / "multirun").exists() or not any((tmp_path / "multirun").rglob("metrics.json"))


def test_jobs_find_the_sweeps_parent_while_other_jobs_run(tmp_path):
    # A parallel launcher: the newest running run of the sweep is a job, not the parent.
    client, experiment = connect(f"sqlite:///{tmp_path}/mlflow.db", "qtrain-digits", 2, 0)
    parent = client.create_run(experiment, tags={SWEEP_TAG: "/sweep", **PARENT_ROLE}).info.run_id
    client.create_run(experiment, tags={SWEEP_TAG: "/sweep", "mlflow.parentRunId": parent})
    client.create_run(experiment, tags={SWEEP_TAG: "/other", **PARENT_ROLE})
    assert sweep_parent(client, experiment, "/sweep").info.run_id == parent


class ServerOutage:
    """MlflowClient calls fail while `down` is true, as they do when the server is gone."""

    CALLS = ("log_batch", "log_artifact", "log_artifacts", "log_image", "set_terminated")

    def __init__(self, monkeypatch):
        self.down = False
        for name in self.CALLS:
            monkeypatch.setattr(MlflowClient, name, self._flaky(getattr(MlflowClient, name)))

    def _flaky(self, call):
        def flaky(client, *args, **kwargs):
            if self.down:
                raise MlflowException("Connection refused")
            return call(client, *args, **kwargs)

        return flaky


def write_run_dir(run_dir: Path, cfg) -> None:
    """What a run leaves: its config, two history rows, final metrics, a plot."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "plots").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    (run_dir / "history.csv").write_text("stage,epoch,step,train/loss,val/acc\ntrain,1,3,1.0,0.5\ntrain,2,6,0.5,0.7\n")
    (run_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.75}))
    Image.new("RGB", (8, 8)).save(run_dir / "plots" / "confusion_matrix.png")


def tracked_with_outage(make_config, tmp_path, monkeypatch, back_at_end: bool) -> tuple[str, Path]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = make_config("model=simple_cnn", "tracking=mlflow", f"tracking.mlflow.uri={uri}")
    run_dir = tmp_path / "run"
    write_run_dir(run_dir, cfg)
    outage = ServerOutage(monkeypatch)
    tracker = MlflowTracker(uri=uri, experiment="qtrain-digits", system_metrics=False)
    with tracker.track(cfg, run_dir):
        tracker.log_epoch({"stage": "train", "step": 3, "train/loss": 1.0, "val/acc": 0.5})
        outage.down = True  # the server goes away mid-run
        tracker.log_epoch({"stage": "train", "step": 6, "train/loss": 0.5, "val/acc": 0.7})
        tracker.log_results({"test/acc": 0.75}, run_dir)
        outage.down = not back_at_end
    outage.down = False
    return uri, run_dir


def test_a_run_whose_server_came_back_is_completed_and_closed_at_its_end(tmp_path, monkeypatch, caplog, make_config):
    caplog.set_level(logging.INFO, logger="qtrain")
    uri, _ = tracked_with_outage(make_config, tmp_path, monkeypatch, back_at_end=True)
    (run,) = runs_of(uri)
    assert run.info.status == "FINISHED"
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [3, 6]
    assert run.data.metrics["test/acc"] == 0.75
    assert {"metrics.json", "plots", ".hydra"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "qtrain.tracking.sync" not in caplog.text
    assert caplog.text.count("failed while") == 1  # the first failure, once
    assert "is back after" in caplog.text and "sent the 1 epochs held back" in caplog.text


def test_a_run_whose_server_stayed_away_says_how_to_sync_and_sync_completes_it(
    tmp_path, monkeypatch, caplog, make_config
):
    uri, run_dir = tracked_with_outage(make_config, tmp_path, monkeypatch, back_at_end=False)
    (run,) = runs_of(uri)
    assert run.info.status == "RUNNING"
    assert f"python -m qtrain.tracking.sync {run_dir}" in caplog.text
    assert sync_main([str(run_dir)]) == 0
    (synced,) = runs_of(uri)
    assert synced.info.run_id == run.info.run_id and synced.info.status == "FINISHED"
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [3, 6]  # no duplicate
    assert synced.data.metrics["test/acc"] == 0.75
    assert {"metrics.json", "history.csv", "plots"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_sync_makes_a_run_from_a_run_directory_never_tracked(tmp_path, make_config):
    run_dir = tmp_path / "run"
    write_run_dir(run_dir, make_config("model=simple_cnn"))
    (run_dir / ".hydra" / "overrides.yaml").write_text("- hydra.sweeper.storage=postgresql://u:s3cret@db/optuna\n")
    uri = f"sqlite:///{tmp_path}/later.db"
    assert sync_main([str(run_dir), "--uri", uri]) == 0
    (run,) = runs_of(uri)
    assert run.info.status == "FINISHED" and run.data.params["optimizer.lr"] == "0.002"
    client = MlflowClient(uri)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1.0, 0.5]
    # The uploaded config files have their passwords redacted.
    uploaded = Path(client.download_artifacts(run.info.run_id, ".hydra/overrides.yaml", str(tmp_path))).read_text()
    assert "postgresql://u:***@db/optuna" in uploaded and "s3cret" not in uploaded
    assert sync_main([str(tmp_path / "nothing")]) == 2


def test_passwords_in_urls_are_redacted_in_params(tmp_path, make_config):
    cfg = make_config("tracking=mlflow", "tracking.mlflow.uri=postgresql://alice:s3cret@db.lab:5432/mlflow")
    params = config_params(describe(cfg).values, {"model": "resnet_quantum", "quantum@model.quantum": "zz_su2"})
    assert params["tracking.mlflow.uri"] == "postgresql://alice:***@db.lab:5432/mlflow"
    assert params["model"] == "resnet_quantum" and params["quantum"] == "zz_su2"
    assert not any("@" in key for key in params)  # MLflow refuses the whole batch of params
    assert not any("s3cret" in value for value in params.values())


@pytest.mark.slow  # a CLI run that waits out an unreachable server
def test_a_password_in_the_tracking_uri_reaches_no_log(tmp_path, run_cli):
    run_dir = tmp_path / "run"
    result = run_cli(
        "model=simple_cnn",
        "debug=fast",
        "tracking=mlflow",
        "tracking.mlflow.uri=http://bob:s3cret@127.0.0.1:9",  # unreachable: its URL is in the warnings
        "tracking.mlflow.http_timeout_s=1",
        "tracking.mlflow.http_retries=0",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shown = result.stdout + result.stderr + (run_dir / "qtrain.log").read_text()
    assert "bob:***@127.0.0.1:9" in shown
    assert "s3cret" not in shown


@pytest.mark.slow
def test_a_joblib_sweep_runs_jobs_in_parallel_under_one_parent(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_cli(
        "-m",
        "hparams_search=optuna",
        "model=simple_cnn",
        "debug=fast",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "tracking=mlflow",
        f"tracking.mlflow.uri={uri}",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel" in result.stdout + result.stderr
    runs = runs_of(uri)
    (parent,) = [r for r in runs if r.data.tags.get("qtrain.role") == "sweep"]
    children = [r for r in runs if r is not parent]
    assert len(children) == 4
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1, 2, 3]
    assert all(r.info.status == "FINISHED" for r in runs)
