"""An Optuna study in a real PostgreSQL server, as a team shares one: the README's
postgresql:// URL, and two sweeps started together on a new database (pytest -m e2e)."""

from __future__ import annotations

import os
import subprocess
import sys

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
    with postgres_cluster() as url:
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
