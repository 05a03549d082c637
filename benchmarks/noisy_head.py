"""The noisy quantum head, side by side in one run: a 6-qubit circuit (the default head:
angle_ry + real_amplitudes, reps 2, Z on each qubit) under FakeNairobiV2's noise (7
qubits), batch 32, float32.

(a) forward + backward: qtrain's torch backend against qtrain's aer backend with the same
    noise (qiskit-aer's EstimatorV2, parameter-shift gradients: what a user trains with
    otherwise). aer takes minutes a step: it is timed once on --aer-batch samples and
    scaled to 32 (its cost is one estimator job per sample, linear in the batch).
(b) forward only: against qiskit-aer's density-matrix simulator run directly on the same
    32 bound circuits, each output's measured observable saved as an expectation value
    (simulator against simulator).
(c) forward + backward: against the ideal torch layer.

Then the widest circuit the exact method trains: forward + backward of `n` qubits on
FakeTorino (133 qubits), method=density_matrix, batch 32, each width in a fresh process
(its peak memory is the process's), up to the first width that does not fit.

    python benchmarks/noisy_head.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from results_table import duration, write_results

SPEC = {"n_qubits": 6, "feature_map": "angle_ry", "ansatz": "real_amplitudes", "reps": 2, "seed": 0}
DEVICE = {"device": "FakeNairobiV2"}
BATCH = 32


def median_seconds(step, repeats: int) -> float:
    step()  # warm-up: caches, first allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_step(layer, x: torch.Tensor):
    def step():
        layer.zero_grad()
        layer(x).sum().backward()

    return step


def forward(layer, x: torch.Tensor):
    def step():
        with torch.no_grad():
            layer(x)

    return step


def aer_directly(layer, x: torch.Tensor):
    """qiskit-aer's density-matrix simulator on the 32 bound circuits, as one job."""
    from qiskit_aer import AerSimulator

    noisy = layer.runner.simulator.circuit
    simulator = AerSimulator(method="density_matrix", noise_model=noisy.aer_noise_model())
    observables = noisy.measured_observables()
    weights = layer.weights.detach().double().numpy()
    circuits = []
    for sample in x.double().numpy():
        bound = noisy.circuit.assign_parameters(
            dict(zip(layer.input_params, sample)) | dict(zip(layer.weight_params, weights))
        )
        for k, observable in enumerate(observables):
            bound.save_expectation_value(observable, list(range(bound.num_qubits)), label=f"o{k}")
        circuits.append(bound)
    return lambda: simulator.run(circuits).result()


def compare(repeats: int, aer_batch: int) -> list[dict]:
    from qtrain.quantum import QuantumLayer

    torch.manual_seed(0)
    noisy = QuantumLayer(noise=DEVICE, **SPEC)
    ideal = QuantumLayer(**SPEC)
    aer = QuantumLayer(backend="aer", noise=DEVICE, **SPEC)
    aer.load_state_dict(noisy.state_dict())
    x = torch.rand(BATCH, SPEC["n_qubits"]) * 3
    noisy_step = median_seconds(training_step(noisy, x), repeats)
    started = time.perf_counter()
    training_step(aer, x[:aer_batch])()
    aer_step = (time.perf_counter() - started) * BATCH / aer_batch
    noisy_forward = median_seconds(forward(noisy, x), repeats)
    aer_forward = median_seconds(aer_directly(noisy, x), max(3, repeats // 10))
    ideal_step = median_seconds(training_step(ideal, x), repeats)
    aer_note = "" if aer_batch == BATCH else f" (timed on {aer_batch}, x{BATCH // aer_batch})"
    return [
        row("(a) forward + backward", noisy_step, "qtrain aer backend" + aer_note, aer_step, "faster", ">= 10,000x"),
        row("(b) forward", noisy_forward, "qiskit-aer density matrix, 32 circuits", aer_forward, "faster", ">= 10x"),
        row("(c) forward + backward", noisy_step, "qtrain torch, ideal", ideal_step, "the ideal's time", "<= 10x"),
    ]


def row(what: str, qtrain_s: float, other: str, other_s: float, ratio: str, goal: str) -> dict:
    """`ratio`: "faster" (other / qtrain) or "the ideal's time" (qtrain / other)."""
    value = other_s / qtrain_s if ratio == "faster" else qtrain_s / other_s
    return {
        "what": what,
        "qtrain_s": qtrain_s,
        "other": other,
        "other_s": other_s,
        "ratio": value,
        "goal": goal,
        "ratio_text": f"{value:,.1f}x {ratio}",
    }


def one_width(n_qubits: int, repeats: int) -> None:
    """In a child process: print the step's median time and this process's peak memory."""
    import resource

    from qtrain.quantum import QuantumLayer

    layer = QuantumLayer(**{**SPEC, "n_qubits": n_qubits}, noise={"device": "FakeTorino", "method": "density_matrix"})
    x = torch.rand(BATCH, n_qubits) * 3
    step = median_seconds(training_step(layer, x), repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"n_qubits": n_qubits, "seconds": step, "peak_gib": peak}))


def widths(sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        command = [sys.executable, __file__, "--width", str(n), "--repeats", str(repeats)]
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["killed"])[-1]
            why = last.split("Error: ", 1)[-1]  # the refusal's line, without the exception's name
            rows.append({"n_qubits": n, "seconds": None, "peak_gib": None, "note": f"refused: {why}"})
            break
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def compare_table(args) -> None:
    write_results(
        args.out,
        "noisy_head",
        compare(args.repeats, args.aer_batch),
        ["FakeNairobiV2 noise, batch 32", "qtrain torch", "against", "its time", "ratio", "goal"],
        lambda r: [
            r["what"],
            duration(r["qtrain_s"]),
            r["other"],
            duration(r["other_s"]),
            r["ratio_text"],
            r["goal"],
        ],
    )


def widths_table(args) -> None:
    write_results(
        args.out,
        "noisy_widths",
        widths(args.widths, max(3, args.repeats // 10)),
        ["qubits (FakeTorino, density matrix)", "forward + backward, batch 32", "peak memory"],
        lambda r: [
            str(r["n_qubits"]),
            duration(r["seconds"]) if r["seconds"] is not None else r["note"],
            f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "-",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--aer-batch", type=int, default=4, help="samples aer's training step is timed on")
    parser.add_argument("--widths", type=int, nargs="*", default=[6, 8, 9, 10, 11, 12])
    parser.add_argument("--parts", nargs="+", choices=["compare", "widths"], default=["compare", "widths"])
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)  # the child of --widths
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.width:
        one_width(args.width, args.repeats)
        return
    if "compare" in args.parts:
        compare_table(args)
    if "widths" in args.parts:
        widths_table(args)


if __name__ == "__main__":
    main()
