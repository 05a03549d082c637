"""The scenarios of Hydra's Optuna sweeper's own tests
(plugins/hydra_optuna_sweeper/tests/test_optuna_sweeper_plugin.py), run against
qtrain's sweeper: nothing the stock sweeper does is lost, with trials in flight
asynchronously (hydra/launcher=joblib or submitit_local, n_jobs=2) as well as one at a
time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

APP = Path(__file__).with_name("sphere_app.py")
ASYNC = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
ONE_AT_A_TIME = ["hydra.sweeper.n_jobs=1"]
SUBMITIT = ["hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2"]  # each trial a process of its own

pytestmark = pytest.mark.slow  # about 10 s a sweep


def sweep(tmp_path: Path, *overrides: str, config: str = "sphere", check: bool = True):
    command = [sys.executable, str(APP), f"--config-name={config}", "-m", f"hydra.sweep.dir={tmp_path}", *overrides]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
        return OmegaConf.load(tmp_path / "optimization_results.yaml")
    return result


def test_tpe_finds_the_sphere_minimum_within_the_upstream_threshold(tmp_path):
    storage = f"sqlite:///{tmp_path}/test.db"
    overrides = ["hydra.sweeper.n_trials=20", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=example"]
    overrides += ["hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=123", "~z", *ONE_AT_A_TIME]
    overrides += ["x=choice(0, 1, 2)", "y=0"]  # the command line's search; y: a fixed value beside it
    returns = sweep(tmp_path, *overrides)
    best = optuna.load_study(storage=storage, study_name="example").best_trial
    assert returns.name == "optuna"
    assert returns.best_params.x == best.params["x"] and returns.best_value == best.value
    assert "y" not in returns.best_params and "y" not in best.params
    # Upstream's threshold: the 95th percentile of the best value over 1000 seeds.
    assert returns.best_value <= 2.27


@pytest.mark.parametrize(
    "n_trials,slots",
    [(10, ASYNC), (10, SUBMITIT), (1, ONE_AT_A_TIME)],
    ids=["async", "async_submitit", "one"],
)
def test_the_grid_sampler_tries_each_point_once(tmp_path, n_trials, slots):
    storage = f"sqlite:///{tmp_path}/test.db"
    overrides = [f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.storage={storage}", *slots]
    returns = sweep(tmp_path, *overrides, config="grid")
    bv, bx, by, bz = returns.best_value, returns.best_params.x, returns.best_params.y, returns.best_params.z
    if n_trials >= 8:  # the whole grid, 2 x 2 x 2 points, each once
        assert bv == 1 and abs(bx) == 1 and by == 0
        points = [tuple(t.params.values()) for t in optuna.load_study(storage=storage, study_name="sphere").trials]
        assert len(set(points)) == len(points) == 8
    else:
        assert bx in [-1, 1] and by in [-1, 0]
    assert bz in ["foo", "bar"]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "with_commandline,slots", [(True, ASYNC), (False, ONE_AT_A_TIME)], ids=["commandline_async", "config"]
)
def test_a_multi_objective_study_returns_a_pareto_front(tmp_path, with_commandline, slots):
    overrides = ["hydra.sweeper.n_trials=10", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]
    if with_commandline:
        overrides += ["x=range(0, 5)", "y=range(0, 3)"]
    returns = sweep(tmp_path, *overrides, *slots, config="multi_objective")
    assert returns.name == "optuna" and len(returns.solutions) >= 1
    steps = {0} if with_commandline else {0, 0.5}
    for solution in returns.solutions:
        assert solution.params.x % 1 in steps and solution.params.y % 1 in steps
        assert not any(_dominates(other["values"], solution["values"]) for other in returns.solutions)


def test_a_custom_search_space_suggests_more_keys(tmp_path):
    overrides = ["hydra.sweeper.n_trials=10", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]
    returns = sweep(tmp_path, *overrides, *ASYNC, "max_z_difference_from_x=0.3", config="custom_search_space")
    assert abs(returns.best_params.x - returns.best_params.z) <= 0.3
    assert 0 <= returns.best_params["+w"] <= 1


@pytest.mark.parametrize("max_failure_rate,slots", [(0.5, ASYNC), (1.0, ONE_AT_A_TIME)], ids=["async", "one"])
def test_the_failure_rate_counts_over_the_whole_sweep(tmp_path, max_failure_rate, slots):
    storage = f"sqlite:///{tmp_path}/test.db"
    overrides = ["hydra.sweeper.n_trials=10", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]
    overrides += [
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        f"hydra.sweeper.storage={storage}",
        "error=true",
    ]
    result = sweep(tmp_path, *overrides, *slots, check=False)
    trials = optuna.load_study(storage=storage, study_name="sphere").trials
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    if max_failure_rate < 1.0:  # stops once 6 of 10 have failed: the rate can no longer end within 0.5
        assert result.returncode == 1
        assert "RuntimeError: cfg.error is True" in result.stderr
        assert 6 <= len(trials) <= 6 + 1  # and the trial still in flight then
    else:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "RuntimeError: cfg.error is True" not in result.stderr
        assert len(trials) == 10
