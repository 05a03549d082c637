"""A sweep of 20 short trials in one sweeper process, with the basic launcher (every trial
inside that process): what a trial leaks must not pile up (benchmarks/sweep_soak.py
runs 100, with joblib too, for the docs' table)."""

from __future__ import annotations

import pytest
from sweep_soak import at, soak


@pytest.mark.slow  # 20 one-epoch trials, tracked in MLflow (about 2 minutes)
def test_twenty_trials_in_one_process_leave_memory_files_and_threads_flat_and_nothing_running(tmp_path):
    soaked = soak(tmp_path, "basic", trials=20)
    tenth, last = at(soaked["samples"], 10), soaked["samples"][-1]
    assert last["trial"] == 20
    assert last["rss_mib"] - tenth["rss_mib"] <= max(0.1 * tenth["rss_mib"], 50), (tenth, last)
    assert last["fds"] <= tenth["fds"] + 2 and last["threads"] <= tenth["threads"] + 2, (tenth, last)
    assert last["processes"] == tenth["processes"], (tenth, last)
    assert soaked["optuna_complete"] == 20 and soaked["optuna_running"] == 0
    assert soaked["mlflow_runs"] == 21 and soaked["mlflow_running"] == 0  # the sweep's run and its 20 trials
