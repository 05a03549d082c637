"""An MLflow tracking server killed under a running training, and under a running sweep,
then started again on the same store (pytest -m e2e): the runs go on, what they logged
meanwhile reaches the server once it is back, in order and once, and every run ends
FINISHED."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from servers import mlflow_server

pytestmark = pytest.mark.e2e

TRAIN = ["model=simple_cnn", "trainer.progress=false", "dataset.batch_size=8", "stages.train.epochs=6"]


def qtrain(untracked, uri: str, cwd, *args: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "qtrain",
        *untracked((*args, *TRAIN, "tracking=mlflow")),
        f"tracking.mlflow.uri={uri}",
    ]
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def logged_steps(client: MlflowClient, run_id: str, key: str = "train/loss") -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def history_rows(folder) -> int:
    return sum(len(path.read_text().splitlines()) for path in folder.rglob("history.csv"))


def restart_under(server, process: subprocess.Popen, folder) -> None:
    """Kill the server once some run has an epoch on it; start it again once a run in
    `folder` has ended an epoch while it was down (the outage is met, not slept through).
    The runs are paused (SIGSTOP) while the server starts: on 2 busy cores its start (10
    to 50 s) would outlast them. The tracker's waits are wall time, so a pause changes
    nothing it does."""
    client = MlflowClient(server.uri)
    while True:
        assert process.poll() is None, process.stdout.read()[-3000:]
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'") if experiments else []
        if any(logged_steps(client, run.info.run_id) for run in runs):
            break
        time.sleep(0.2)
    server.kill()
    rows = history_rows(folder)
    while history_rows(folder) == rows:
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        server.start()
    finally:
        os.killpg(process.pid, signal.SIGCONT)


def history_steps(run_dir) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def test_a_server_restart_under_a_training_loses_nothing_and_the_run_ends_finished(tmp_path, untracked):
    with mlflow_server(tmp_path / "server") as server:
        training = qtrain(untracked, server.uri, tmp_path, f"hydra.run.dir={tmp_path / 'run'}")
        restart_under(server, training, tmp_path / "run")
        output = training.communicate(timeout=600)[0]
        assert training.returncode == 0, output[-3000:]
        client = MlflowClient(server.uri)
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert run.info.status == "FINISHED", output[-3000:]
        for key in ("train/loss", "val/acc"):  # every epoch once, in order
            assert logged_steps(client, run.info.run_id, key) == history_steps(tmp_path / "run"), key
        assert "test/acc" in run.data.metrics and client.list_artifacts(run.info.run_id, "plots")
    assert "MLflow tracking at" in output and "is back" in output, output[-3000:]  # the outage was met, and outlasted


def test_a_server_restart_under_a_sweep_ends_the_parent_and_every_child_finished(tmp_path, untracked):
    with mlflow_server(tmp_path / "server") as server:
        sweep = qtrain(
            untracked, server.uri, tmp_path, "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        )  # fmt: skip
        restart_under(server, sweep, tmp_path / "sweep")
        output = sweep.communicate(timeout=900)[0]
        assert sweep.returncode == 0, output[-3000:]
        client = MlflowClient(server.uri)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) == 3 and {run.info.status for run in runs} == {"FINISHED"}
        (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
        assert parent.data.tags["qtrain.jobs"] == "2 (0 pruned, 0 killed, 0 failed)"
        for child in (run for run in runs if run is not parent):
            run_dir = tmp_path / "sweep" / child.data.tags["qtrain.run_dir"].rsplit("/", 1)[-1]
            assert logged_steps(client, child.info.run_id) == history_steps(run_dir)
    assert "MLflow tracking at" in output and "is back" in output
