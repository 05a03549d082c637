"""The first run a new user makes: wall time and peak memory of the whole command
`python -m qtrain` (the default experiment; tracking off so that the figure is the
training's), medians over --repeats runs, each in a fresh folder.

    python benchmarks/first_run.py --repeats 3 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_table import write_results

COMMANDS = {
    "python -m qtrain (resnet_quantum, the default)": [],
    "python -m qtrain model=simple_cnn": ["model=simple_cnn"],
}


def one_run(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "qtrain", *overrides, "tracking=none", "trainer.progress=false"]
        started = time.perf_counter()
        child = subprocess.Popen([*command, f"hydra.run.dir={folder}/run"], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory (ru_maxrss, KiB)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} failed")
        metrics = json.loads((Path(folder) / "run" / "metrics.json").read_text())
    return {"seconds": seconds, "peak_gib": usage.ru_maxrss / 2**20, "test_acc": metrics["test/acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    for name, overrides in COMMANDS.items():
        runs = [one_run(overrides) for _ in range(args.repeats)]
        rows.append(
            {
                "command": name,
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_gib": max(r["peak_gib"] for r in runs),
                "test_acc": runs[0]["test_acc"],
                "runs": runs,
            }
        )
    write_results(
        args.out,
        "first_run",
        rows,
        ["command", "wall time (median)", "peak memory", "test acc"],
        lambda r: [r["command"], f"{r['seconds']:.0f} s", f"{r['peak_gib']:.2f} GiB", f"{r['test_acc']:.3f}"],
    )


if __name__ == "__main__":
    main()
