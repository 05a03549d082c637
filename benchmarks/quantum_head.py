"""Forward+backward time of a QuantumLayer per backend, over a grid of (qubits, batch).

The circuit is the usual hybrid head: ZZ feature map (2 reps) + RealAmplitudes
(reps=2), linear entanglement, Z on every qubit. For each point, the median over
--repeats of one forward and backward (gradients to inputs and weights). The
speed-up of `torch` over `qiskit` is taken at the points where both run, side by
side in this process. `qiskit` and `aer` take seconds per batch, so they run only
at the points in --reference-grid.

    python benchmarks/quantum_head.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from results_table import write_results

from qtrain.quantum.layer import QuantumLayer


def step_seconds(layer: QuantumLayer, batch: int, repeats: int) -> float:
    x = torch.rand(batch, len(layer.input_params), requires_grad=True)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        layer(x).sum().backward()
        times.append(time.perf_counter() - start)
        x.grad = None
        layer.weights.grad = None
    return statistics.median(times[1:])


def layer(backend: str, n_qubits: int) -> QuantumLayer:
    return QuantumLayer(
        n_qubits=n_qubits,
        feature_map="zz",
        feature_map_reps=2,
        ansatz="real_amplitudes",
        reps=2,
        entanglement="linear",
        observables="z",
        backend=backend,
        seed=0,
    )


def busy_machine_step(repeats: int) -> dict:
    """The 4 x 32 step while a CPU-bound process competes for the cores."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        seconds = step_seconds(layer("torch", 4), 32, repeats)
    finally:
        hog.kill()
    return {"backend": "torch, beside a CPU-bound process", "qubits": 4, "batch": 32, "seconds": seconds}


def parse_grid(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in point.split("x")) for point in text.split(",") if point]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="4x32,4x256,8x32,8x256,12x32,12x256", help="qubits x batch points")
    parser.add_argument("--reference-grid", default="4x32", help="points also run on qiskit and aer")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for n_qubits, batch in parse_grid(args.grid):
        rows.append(
            {
                "backend": "torch",
                "qubits": n_qubits,
                "batch": batch,
                "seconds": step_seconds(layer("torch", n_qubits), batch, args.repeats),
            }
        )
    for n_qubits, batch in parse_grid(args.reference_grid):
        for backend in ("qiskit", "aer"):
            seconds = step_seconds(layer(backend, n_qubits), batch, args.reference_repeats)
            rows.append({"backend": backend, "qubits": n_qubits, "batch": batch, "seconds": seconds})
    rows.append(busy_machine_step(args.repeats))
    torch_times = {(r["qubits"], r["batch"]): r["seconds"] for r in rows if r["backend"] == "torch"}
    for row in rows:
        row["torch_speedup"] = row["seconds"] / torch_times.get((row["qubits"], row["batch"]), float("nan"))
    write_results(
        args.out,
        "quantum_head",
        rows,
        ["backend", "qubits", "batch", "forward+backward", "torch is faster by"],
        lambda r: [
            r["backend"],
            str(r["qubits"]),
            str(r["batch"]),
            _duration(r["seconds"]),
            "" if r["backend"].startswith("torch") else f"{r['torch_speedup']:,.0f}x",
        ],
    )


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
