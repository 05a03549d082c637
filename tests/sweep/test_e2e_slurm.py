"""A sweep on a real SLURM cluster (`make slurm-up`: one node, two CPU slots), through
hydra/launcher=submitit_slurm: six trials as SLURM jobs, two at a time; one preempted
mid-training as SLURM does it (SIGUSR2), requeued, and resumed from its own last.pt to
the metrics of an uninterrupted twin; one cancelled outright, FAIL while the sweep goes
on (pytest -m e2e)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient
from servers import slurm_cluster

pytestmark = pytest.mark.e2e

TRIALS = 6
CANCELLED = 2  # scancel'ed mid-training
TWIN = {"optimizer.lr": 3e-3, "optimizer.weight_decay": 0.0, "dataset.batch_size": 64}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def job_state(job_id: str) -> str:
    return subprocess.run(
        ["squeue", "--noheader", "--format=%T", "--jobs", job_id], check=False, capture_output=True, text=True
    ).stdout.strip()


def test_a_sweep_runs_its_trials_as_slurm_jobs_and_a_preempted_trial_resumes(tmp_path, untracked):
    slurm_cluster()
    storage, uri = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    # Trials 0 and 1 have the same values: 0 is preempted, 1 runs through.
    study = optuna.create_study(study_name="slurm", storage=storage, direction="maximize")
    study.enqueue_trial(TWIN)
    study.enqueue_trial(TWIN)
    command = [
        sys.executable, "-m", "qtrain", "-m", "hparams_search=optuna", "model=simple_cnn",
        "trainer.progress=false", "stages.train.epochs=3",
        "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20",
        "hydra.sweeper.n_jobs=2", f"hydra.sweeper.n_trials={TRIALS}",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=slurm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", "tracking=mlflow", f"tracking.mlflow.uri={uri}",
    ]  # fmt: skip
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = tmp_path / "sweep" / "0"
        wait_for(lambda: (first / "checkpoints" / "last.pt").is_file(), 300, "trial 0's first epoch")
        job = json.loads((first / "optuna_trial.json").read_text())["slurm_job_id"]
        # Preempted as SLURM does it with --signal: submitit requeues the job.
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
        wait_for(lambda: job_state(job) == "PENDING", 60, f"job {job} requeued")
        # SLURM holds a requeued job for two minutes (its BeginTime); an admin may release it.
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
        doomed = tmp_path / "sweep" / str(CANCELLED)
        wait_for(lambda: (doomed / "checkpoints" / "last.pt").is_file(), 300, f"trial {CANCELLED}'s first epoch")
        cancelled = json.loads((doomed / "optuna_trial.json").read_text())["slurm_job_id"]
        subprocess.run(["scancel", cancelled], check=True)
        output, _ = sweep.communicate(timeout=900)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, output[-3000:]
    trials = optuna.load_study(study_name="slurm", storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL" if t.number == CANCELLED else "COMPLETE" for t in trials]
    assert len(trials) == TRIALS
    assert "this job was requeued: resuming from" in (first / "qtrain.log").read_text()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("qtrain-digits").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("qtrain.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    finished = {int(r.data.tags["optuna.trial"]): r for r in children if r.info.status == "FINISHED"}
    assert sorted(finished) == [n for n in range(TRIALS) if n != CANCELLED]
    job_ids = {n: run.data.tags["slurm.job_id"] for n, run in finished.items()}
    assert len(set(job_ids.values())) == TRIALS - 1 and job_ids[0] == job
    assert all(trials[n].user_attrs["qtrain.slurm_job_id"] == job_ids[n] for n in finished)
    # Trial 0's first attempt, and the cancelled trial, stopped by SLURM's signals.
    stopped = {
        (r.data.tags["optuna.trial"], r.data.tags["slurm.job_id"]) for r in children if r.info.status == "KILLED"
    }
    assert stopped == {("0", job), (str(CANCELLED), cancelled)}
    # Resumed from last.pt, trial 0 ends exactly where its uninterrupted twin does.
    for metric in ("val/acc_best", "test/acc", "test/loss"):
        assert finished[0].data.metrics[metric] == finished[1].data.metrics[metric], metric
    assert trials[0].value == trials[1].value
    assert parent.data.tags["qtrain.jobs"] == f"{TRIALS + 1} (0 pruned, 2 killed, 0 failed)"
