"""qtrain's sweeper with real qtrain jobs: trials launched the moment a slot frees (no
batch barrier), trials pruned after an epoch, a pruner refused where the objective is
not reported after every epoch, and a killed sweep finished by its command run again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHORT = ["model=simple_cnn", "trainer.progress=false", "tracking=none"]


def sweep_command(tmp_path, name: str, *overrides: str) -> list[str]:
    return [
        "-m",
        "hparams_search=optuna",
        *SHORT,
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
        "hydra.sweeper.study_name=study",
        f"hydra.sweep.dir={tmp_path / name}",
        *overrides,
    ]


@pytest.mark.slow  # three trials on two joblib slots (about 40 s)
def test_a_new_trial_starts_before_the_slowest_running_one_ends(tmp_path, run_cli):
    # Trial 0 trains 8 epochs, trials 1 and 2 one epoch each (enqueued, so asked in
    # this order): in batches of two, trial 2 would wait for trial 0.
    study = optuna.create_study(study_name="study", storage=f"sqlite:///{tmp_path}/optuna.db", direction="maximize")
    for epochs in (8, 1, 1):
        study.enqueue_trial({"stages.train.epochs": epochs})
    result = run_cli(
        *sweep_command(tmp_path, "sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=3",
        "stages.train.epochs=choice(1,8)",
        "trainer.limit_train_batches=8",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.params["stages.train.epochs"] for t in trials] == [8, 1, 1]
    assert trials[2].datetime_start < trials[0].datetime_complete
    # Each job ran its own trial: the trial records the job's folder, the folder the trial.
    for trial in trials:
        folder = trial.user_attrs["qtrain.run_dir"]
        assert (
            json.loads((tmp_path / "sweep" / folder.rsplit("/", 1)[-1] / "optuna_trial.json").read_text())["trial"]
            == trial.number
        )


@pytest.mark.slow  # two short sweeps on one study (about 30 s)
def test_a_trial_worse_than_the_median_is_pruned_after_an_epoch_and_keeps_its_last_checkpoint(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracked = ["tracking=mlflow", f"tracking.mlflow.uri={uri}", "stages.train.epochs=3", "hydra.sweeper.n_trials=1"]
    good = run_cli(*sweep_command(tmp_path, "good", *tracked, "optimizer.lr=3e-3"), cwd=tmp_path, timeout=600)
    assert good.returncode == 0, good.stderr[-3000:]
    # lr 1e-7 learns nothing: after its first epoch it is below the median of trial 0's.
    pruning = ["hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=1", "optimizer.lr=1e-7"]
    bad = run_cli(*sweep_command(tmp_path, "bad", *tracked, *pruning), cwd=tmp_path, timeout=600)
    assert bad.returncode == 0, bad.stderr[-3000:]
    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert list(trials[1].intermediate_values) == [1]  # reported after epoch 1, then stopped
    assert list(trials[0].intermediate_values) == [1, 2, 3]  # the step: the epoch
    folder = tmp_path / "bad" / "0"
    record = json.loads((folder / "optuna_trial.json").read_text())
    assert record["trial"] == 1 and record["state"] == "PRUNED" and record["pruned_after_epoch"] == 1
    assert (folder / "checkpoints" / "last.pt").is_file() and not (folder / "metrics.json").exists()
    assert "trial 1 pruned after epoch 1" in bad.stderr + bad.stdout
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("qtrain-digits").experiment_id])
    (pruned,) = [r for r in runs if r.data.tags.get("optuna.trial") == "1"]
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["optuna.state"] == "PRUNED" and pruned.data.tags["optuna.pruned_after_epoch"] == "1"
    (parent,) = [
        r for r in runs if r.data.tags.get("qtrain.role") == "sweep" and r.data.tags["qtrain.sweep"].endswith("bad")
    ]
    assert parent.data.tags["qtrain.jobs"] == "1 (1 pruned, 0 killed, 0 failed)" and parent.info.status == "FINISHED"


@pytest.mark.slow  # a refused command line (about 6 s)
def test_a_pruner_on_an_objective_not_reported_each_epoch_is_refused_in_one_line(tmp_path, run_cli):
    result = run_cli(
        *sweep_command(tmp_path, "sweep", "hydra/sweeper/pruner=median", "objective=test/acc"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "objective=test/acc: hydra/sweeper/pruner=median prunes on a value reported after every epoch: "
        "use one of val/acc_best, val/loss_best, or hydra/sweeper/pruner=none"
    )
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "optuna.db").exists()


@pytest.mark.slow  # a sweep killed mid-trial, then its command again (about 90 s)
def test_a_killed_sweeps_command_run_again_finishes_it_in_its_folder_under_its_parent(tmp_path, run_cli):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = sweep_command(tmp_path, "sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    command = [c for c in command if c != "tracking=none"]  # tracked: the parent run must carry on
    command += ["hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=3", "stages.train.epochs=4"]
    command += ["tracking=mlflow", f"tracking.mlflow.uri={uri}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "qtrain", *command], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "sweep" / "1" / "checkpoints" / "last.pt").is_file():  # both trials mid-training
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.5)
    finally:
        first.send_signal(signal.SIGKILL)  # the sweep's own process; its joblib workers live on
        first.wait()
    again = run_cli(*command, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing the interrupted sweep in" in again.stdout + again.stderr
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = {t.number: t for t in study.trials}
    assert not [t for t in trials.values() if t.state == optuna.trial.TrialState.RUNNING]
    dead = [t for t in trials.values() if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in dead] == [0, 1]
    for attempt in dead:  # each retried with its values, from its last.pt
        retry = trials[attempt.user_attrs["qtrain.retried_as"]]
        assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == attempt.params
        assert retry.user_attrs["qtrain.retry_of"] == attempt.number
        overrides = (Path(retry.user_attrs["qtrain.run_dir"]) / ".hydra" / "overrides.yaml").read_text()
        assert f"ckpt_path={attempt.user_attrs['qtrain.run_dir']}/checkpoints/last.pt" in overrides
    (launch,) = [value for key, value in study.user_attrs.items() if key.startswith("qtrain.launch.")]
    assert launch["finished"] and launch["n_trials"] == 3 and len(launch["trials"]) == 3
    assert all(trials[n].state == optuna.trial.TrialState.COMPLETE for n in launch["trials"])
    # One sweep folder, one parent run, every job under it.
    assert all(Path(t.user_attrs["qtrain.run_dir"]).parent == tmp_path / "sweep" for t in trials.values())
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("qtrain-digits").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("qtrain.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in runs if r is not parent)
