"""One fixed search, tuned two ways side by side: Hydra's stock Optuna sweeper (trials in
batches of n_jobs, no pruning) against qtrain's (n_jobs trials always in flight, the
median pruner). `hparams_search=optuna model=cnn_quantum` on digits with its space as it
is, 8 epochs a trial, 16 trials on 2 joblib slots, TPE seeded alike in both, for each
seed. The table: wall time, slot utilisation (the trials' time over slots x wall time),
the best trial's val/acc_best and test/acc, the pruned trials: medians over the seeds.

    python benchmarks/sweep_async.py                      # seeds 0 1 2 (about 2 hours on 2 cores)
    python benchmarks/sweep_async.py --trials 4 --epochs 2 --seeds 0   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from results_table import duration, write_results

SWEEPERS = {  # name: the overrides that pick it
    "Hydra's Optuna sweeper (batches)": ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize"],
    "qtrain's sweeper, pruner=median": ["hydra/sweeper/pruner=median"],
}


def sweep(folder: Path, name: str, seed: int, trials: int, epochs: int) -> dict:
    storage = f"sqlite:///{folder}/optuna.db"
    command = [
        *("-m", "hparams_search=optuna", "model=cnn_quantum", f"stages.train.epochs={epochs}", f"seed={seed}"),
        *("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"),
        *(f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=bench"),
        *("hydra/sweeper/sampler=tpe", f"hydra.sweeper.sampler.seed={seed}"),
        *(f"hydra.sweep.dir={folder / 'sweep'}", "tracking=none", "trainer.progress=false"),
        *SWEEPERS[name],
    ]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qtrain", *command], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="bench", storage=storage)
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials if t.datetime_complete)
    runs = [json.loads(path.read_text()) for path in (folder / "sweep").glob("*/metrics.json")]
    best = max(runs, key=lambda metrics: metrics["val/acc_best"])
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {
        "wall_s": wall,
        "utilisation": busy / (2 * wall),
        "val": best["val/acc_best"],
        "test": best["test/acc"],
        "pruned": pruned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    measured = {name: [] for name in SWEEPERS}
    for seed in args.seeds:
        for name in SWEEPERS:  # side by side, seed by seed
            with tempfile.TemporaryDirectory() as folder:
                measured[name].append(sweep(Path(folder), name, seed, args.trials, args.epochs))
            print(name, seed, measured[name][-1], flush=True)
    stock = statistics.median(m["wall_s"] for m in measured[next(iter(SWEEPERS))])
    rows = []
    for name, runs in measured.items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        rows.append({"sweeper": name, "seeds": args.seeds, "runs": runs, **median, "speedup": stock / median["wall_s"]})
    write_results(
        args.out,
        "sweep_async",
        rows,
        [f"{args.trials} trials x {args.epochs} epochs, 2 slots (median of {len(args.seeds)} seeds)", "wall time",
         "vs batches", "slot utilisation", "best val/acc_best", "its test/acc", "pruned"],
        lambda r: [r["sweeper"], duration(r["wall_s"]), f"{r['speedup']:.2f}x", f"{r['utilisation']:.0%}",
                   f"{r['val']:.3f}", f"{r['test']:.3f}", f"{r['pruned']:.0f}"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
