"""Noise-aware training, measured: for each experiment and seed, the ideal twin
(`model.quantum.noise.device=null`) and the noise-trained run, then each checkpoint
evaluated the other way (`train=false ckpt_path=... model.quantum.noise.device=...`).
The table: test accuracy, mean and spread over the seeds, of ideal-trained evaluated
ideal and noisy, and noise-trained evaluated noisy and ideal (and per head, where the
model has heads).

    python benchmarks/noise_aware.py --experiments digits_noise_aware --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results_table import write_results

DEVICE = "FakeNairobiV2"
CASES = {  # column: (which run's checkpoint, the device it is evaluated under)
    "ideal-trained, ideal": ("ideal", None),
    "ideal-trained, noisy": ("ideal", DEVICE),
    "noise-trained, noisy": ("noisy", DEVICE),
    "noise-trained, ideal": ("noisy", "null"),
}


def qtrain(folder: Path, *overrides: str) -> dict:
    command = [sys.executable, "-m", "qtrain", *overrides, "tracking=none", "trainer.progress=false"]
    subprocess.run([*command, f"hydra.run.dir={folder}"], check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / "metrics.json").read_text())


def one_seed(experiment: str, seed: int, extra: list[str], root: Path, shared: str | None) -> dict[str, dict]:
    base = [f"experiment={experiment}", f"seed={seed}", *extra]
    trained = {"ideal": root / "ideal", "noisy": root / "noisy"}
    results = {"ideal-trained, ideal": qtrain(trained["ideal"], *base, "model.quantum.noise.device=null")}
    if shared:  # the noisy run starts where the ideal one's `shared` stage ended
        start = trained["ideal"] / "checkpoints" / f"stage_{shared}_best.pt"
        base += [f"init_from={start}", f"stages.{shared}=null"]
    results["noise-trained, noisy"] = qtrain(trained["noisy"], *base)
    for case, (run, device) in CASES.items():
        if case not in results:
            checkpoint = trained[run] / "checkpoints" / "best.pt"
            evaluation = ["train=false", f"ckpt_path={checkpoint}", f"model.quantum.noise.device={device}", *extra]
            results[case] = qtrain(root / case.replace(", ", "_").replace("-", "_"), *evaluation)
    return results


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=["digits_noise_aware"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every command (dataset.root=...)")
    parser.add_argument(
        "--shared-stage",
        help="a stage that never sees the quantum head (the staged ensemble's `classical`, where it is masked): "
        "the noisy run starts from the ideal run's checkpoint of it instead of training it again",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    for experiment in args.experiments:
        seeds = []
        for seed in args.seeds:
            # A seed's results are kept in --out: a rerun with more seeds measures only the new ones.
            kept = args.out / f"noise_aware_{experiment}_seed{seed}.json"
            if not kept.is_file():
                with tempfile.TemporaryDirectory() as folder:
                    results = one_seed(experiment, seed, args.extra, Path(folder), args.shared_stage)
                args.out.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps(results, indent=2))
            seeds.append(json.loads(kept.read_text()))
            write_table(args.out, experiment, args.seeds[: len(seeds)], seeds)  # after each seed: long runs


def write_table(out: Path, experiment: str, seeds: list[int], results: list[dict]) -> None:
    metrics = [name for name in results[0]["ideal-trained, ideal"] if name.startswith("test/acc")]
    rows = []
    for metric in metrics:
        cells = {case: [r[case][metric] for r in results] for case in CASES}
        rows.append({"experiment": experiment, "metric": metric, "seeds": seeds, **cells})
    write_results(  # one table per experiment: docs/noise.md's `bench:noise_aware_<experiment>`
        out,
        f"noise_aware_{experiment}",
        rows,
        [f"{experiment}, seeds {', '.join(map(str, seeds))}", *CASES],
        lambda r: [r["metric"], *(summary(r[case]) for case in CASES)],
    )


if __name__ == "__main__":
    main()
