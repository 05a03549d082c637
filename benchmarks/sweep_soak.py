"""A long sweep in one sweeper process: does what one trial leaks pile up? 100 short trials
(`model=simple_cnn`, 1 epoch, digits, tracked in MLflow) with the basic launcher (every
trial inside the sweeper's own process) and with joblib (trials in 2 worker processes).
After each trial it samples the sweep's processes (the sweeper and its children): memory
(RSS), open file descriptors, threads. The table: those after the 10th and the last
trial, and the MLflow runs and Optuna trials left RUNNING (none, when the sweep ended well).

    python benchmarks/sweep_soak.py                         # 100 trials each (about 15 minutes on 2 cores)
    python benchmarks/sweep_soak.py --trials 20 --launchers basic
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import psutil
from results_table import write_results

LAUNCHERS = {  # name: the overrides that pick it
    "basic": ["hydra/launcher=basic"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
}


def usage(process: psutil.Process) -> dict:
    """Memory, file descriptors and threads of `process` and its children, together."""
    total = {"rss_mib": 0.0, "fds": 0, "threads": 0, "processes": 0}
    for member in [process, *process.children(recursive=True)]:
        try:
            total["rss_mib"] += member.memory_info().rss / 2**20
            total["fds"] += member.num_fds()
            total["threads"] += member.num_threads()
            total["processes"] += 1
        except psutil.NoSuchProcess:  # a child that ended between the listing and the look
            continue
    return total


def soak(folder: Path, launcher: str, trials: int) -> dict:
    """Run the sweep in `folder`; its samples (one per finished trial) and what it left RUNNING."""
    optuna_db, mlflow_db = f"sqlite:///{folder}/optuna.db", f"sqlite:///{folder}/mlflow.db"
    sweep_dir = folder / "sweep"
    command = [
        *(sys.executable, "-m", "qtrain", "-m", "hparams_search=optuna", "model=simple_cnn", "stages.train.epochs=1"),
        *(f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.storage={optuna_db}", "hydra.sweeper.study_name=soak"),
        *("tracking=mlflow", f"tracking.mlflow.uri={mlflow_db}", "trainer.progress=false"),
        f"hydra.sweep.dir={sweep_dir}",
        *LAUNCHERS[launcher],
    ]
    started = time.perf_counter()
    sweeper = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process, samples = psutil.Process(sweeper.pid), []
    while sweeper.poll() is None:
        finished = len(list(sweep_dir.glob("*/metrics.json")))
        if finished > len(samples):
            samples.append({"trial": finished, **usage(process)})
        time.sleep(0.05)
    wall = time.perf_counter() - started
    if sweeper.returncode != 0:
        raise RuntimeError(f"the {launcher} sweep failed: {sweeper.stderr.read()[-3000:]}")
    client = mlflow.MlflowClient(mlflow_db)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=10 * trials)
    study = optuna.load_study(study_name="soak", storage=optuna_db)
    return {
        "launcher": launcher,
        "trials": trials,
        "wall_s": wall,
        "samples": samples,
        "mlflow_runs": len(runs),
        "mlflow_running": sum(run.info.status == "RUNNING" for run in runs),
        "optuna_complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials),
        "optuna_running": sum(t.state == optuna.trial.TrialState.RUNNING for t in study.trials),
    }


def at(samples: list[dict], trial: int) -> dict:
    """The sample taken once `trial` trials had finished (or the first after)."""
    return next(s for s in samples if s["trial"] >= trial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--launchers", nargs="+", default=list(LAUNCHERS), choices=list(LAUNCHERS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    for launcher in args.launchers:
        with tempfile.TemporaryDirectory() as folder:
            row = soak(Path(folder), launcher, args.trials)
        print(f"{launcher}: trial, RSS MiB, fds, threads, processes")
        for sample in row["samples"]:
            print(f"  {sample['trial']:4d} {sample['rss_mib']:8.1f} {sample['fds']:5d} {sample['threads']:5d} "
                  f"{sample['processes']:3d}", flush=True)  # fmt: skip
        tenth, last = at(row["samples"], 10), row["samples"][-1]
        rows.append(row | {"tenth": tenth, "last": last})
    write_results(
        args.out,
        "sweep_soak",
        rows,
        ["launcher", "trials", "wall time", "RSS after 10th / last", "fds after 10th / last",
         "threads after 10th / last", "MLflow runs (RUNNING)", "Optuna COMPLETE (RUNNING)"],
        lambda r: [r["launcher"], str(r["trials"]), f"{r['wall_s'] / 60:.1f} min",
                   f"{r['tenth']['rss_mib']:.0f} / {r['last']['rss_mib']:.0f} MiB",
                   f"{r['tenth']['fds']} / {r['last']['fds']}", f"{r['tenth']['threads']} / {r['last']['threads']}",
                   f"{r['mlflow_runs']} ({r['mlflow_running']})", f"{r['optuna_complete']} ({r['optuna_running']})"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
