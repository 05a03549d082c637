"""tracking=tensorboard and tracking=[mlflow,tensorboard]: event files read back as
TensorBoard reads them."""

from __future__ import annotations

import csv

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EPOCHS = 3


def events(run_dir):
    (folder,) = {path.parent for path in (run_dir / "tensorboard").rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def history_steps(run_dir):
    with open(run_dir / "history.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def train(run_cli, tmp_path, tracking: str, *more: str):
    run_dir = tmp_path / "run"
    result = run_cli(
        "model=simple_cnn",
        "debug=fast",
        f"stages.train.epochs={EPOCHS}",
        f"trainer.limit_epochs={EPOCHS}",
        f"tracking={tracking}",
        f"hydra.run.dir={run_dir}",
        *more,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_tensorboard_logs_each_epoch_the_final_metrics_and_the_plots(tmp_path, run_cli):
    run_dir = train(run_cli, tmp_path, "tensorboard")
    board = events(run_dir)
    steps = history_steps(run_dir)
    assert len(steps) == EPOCHS
    for name in ("val/acc", "train/loss", "lr"):
        assert [event.step for event in board.Scalars(name)] == steps, name
    with open(run_dir / "history.csv") as f:
        written = [float(row["val/acc"]) for row in csv.DictReader(f)]
    assert [event.value for event in board.Scalars("val/acc")] == pytest.approx(written)
    assert "test/acc" in board.Tags()["scalars"]
    assert "plots/confusion_matrix" in board.Tags()["images"]
    # The HParams dashboard's summary names the config's keys.
    plugin = board.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugin
    assert b"optimizer.lr" in plugin["_hparams_/session_start_info"]
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # a CLI run with both trackers (the fast tier runs each alone)
def test_both_trackers_log_one_mlflow_run_and_the_event_files(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/both.db"
    run_dir = train(run_cli, tmp_path, "[mlflow,tensorboard]", f"tracking.mlflow.uri={uri}")
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("qtrain-digits").experiment_id])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == EPOCHS
    assert [event.step for event in events(run_dir).Scalars("val/acc")] == history_steps(run_dir)


def test_an_unknown_tracker_lists_the_valid_ones(tmp_path, run_cli):
    result = run_cli("tracking=wandb", cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not find 'tracking/wandb'" in result.stderr
    for name in ("mlflow", "none", "tensorboard"):
        assert f"\t{name}\n" in result.stderr
