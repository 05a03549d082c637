"""An Optuna study in a real PostgreSQL server, as a team shares one: the README's
postgresql:// URL, and two sweeps started together on a new database (pytest -m e2e)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from servers import PASSWORD, postgres_cluster

pytestmark = pytest.mark.e2e

TRIALS = 3


def sweep(untracked, url: str, cwd, name: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "qtrain",
        "-m",
        *untracked(
            (
                "hparams_search=optuna",
                "model=simple_cnn",
                "debug=fast",
                f"hydra.sweeper.n_trials={TRIALS}",
                f"hydra.sweeper.storage={url}",
                "hydra.sweeper.study_name=shared",
                f"hydra.sweep.dir={cwd / name}",
            )
        ),
    ]
    return subprocess.Popen(
        command, cwd=cwd, env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_sweeps_started_together_share_one_new_study(tmp_path, untracked):
    with postgres_cluster() as server:
        url = server.url
        assert url.startswith("postgresql://qtrain:")  # the README's form: SQLAlchemy picks the driver
        workers = [sweep(untracked, url, tmp_path, name) for name in ("a", "b")]
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, output[-3000:]
            assert "Storage: postgresql://qtrain:***@127.0.0.1:" in output
            assert PASSWORD not in output
        study = optuna.load_study(study_name="shared", storage=url)
        trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * TRIALS
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # Each worker explored its own points.
    assert len({t.params["optimizer.lr"] for t in trials}) == 2 * TRIALS


def restart_sweep(untracked, url: str, cwd, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "qtrain", "-m",
        *untracked(("hparams_search=optuna", "model=simple_cnn", "stages.train.epochs=2", "trainer.progress=false",
                    "trainer.limit_train_batches=8", "hydra.sweeper.n_trials=4", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", f"hydra.sweeper.storage={url}",
                    "hydra.sweeper.study_name=restarted", f"hydra.sweep.dir={cwd / 'sweep'}", *overrides)),
    ]  # fmt: skip


def finished_trials(url: str) -> int:
    try:
        study = optuna.load_study(study_name="restarted", storage=url)
    except KeyError:  # not created yet
        return 0
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def stop_once_trials_finished(server, url: str, sweeper: subprocess.Popen, n: int) -> None:
    while finished_trials(url) < n:
        assert sweeper.poll() is None, sweeper.stdout.read()[-3000:]
        time.sleep(0.2)
    server.stop()


def test_a_database_restart_mid_sweep_is_waited_for_and_no_trial_is_lost_or_counted_twice(tmp_path, untracked):
    with postgres_cluster() as server:
        command = restart_sweep(untracked, server.url, tmp_path)
        sweeper = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stop_once_trials_finished(server, server.url, sweeper, 2)
        time.sleep(30)  # the database is down for 30 s under the running sweep
        server.start()
        output = sweeper.communicate(timeout=600)[0]
        assert sweeper.returncode == 0, output[-3000:]
        trials = optuna.load_study(study_name="restarted", storage=server.url).get_trials(deepcopy=False)
    waits = [line for line in output.splitlines() if "is unreachable" in line]
    assert waits and all(
        "postgresql://qtrain:***@127.0.0.1:" in line and "waiting up to 300 s" in line for line in waits
    )
    assert any("is back after" in line for line in output.splitlines())  # logged at INFO
    assert PASSWORD not in output
    assert sorted(t.number for t in trials) == list(range(4))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_a_database_down_past_the_limit_stops_the_sweep_in_one_line_and_its_command_finishes_it(tmp_path, untracked):
    with postgres_cluster() as server:
        command = restart_sweep(untracked, server.url, tmp_path, "hydra.sweeper.storage_outage_s=5")
        sweeper = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop_once_trials_finished(server, server.url, sweeper, 1)
        stdout, stderr = sweeper.communicate(timeout=600)
        assert sweeper.returncode == 1, (stdout + stderr)[-3000:]
        assert "Traceback" not in stdout + stderr, stderr[-3000:]
        (line,) = [line for line in stderr.splitlines() if line.startswith("hydra.sweeper.storage=")]
        assert line.startswith("hydra.sweeper.storage=postgresql://qtrain:***@127.0.0.1:")
        assert "unreachable for 5 s" in line and line.endswith(
            "run the same command again once the database is back, to go on with it"
        )
        assert PASSWORD not in stdout + stderr
        server.start()
        again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
        assert "continuing the interrupted sweep" in again.stdout + again.stderr
        trials = optuna.load_study(study_name="restarted", storage=server.url).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4 and optuna.trial.TrialState.RUNNING not in states
