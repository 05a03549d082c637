"""qtrain's torch simulator against the simulators a researcher would pick instead, on
the same circuits: forward + backward (gradients to inputs and weights) of Z on every
qubit, side by side in one process.

Peers (the `bench` extra: pip install -e '.[bench]'; a missing one is named and left
out): PennyLane default.qubit (backprop, parameter broadcasting), PennyLane
lightning.qubit (adjoint) and TorchQuantum-ng. Each runs the circuit qtrain builds,
written gate by gate in its own API from the transpiled qiskit circuit (H, P, RY, CX),
with the angles computed in torch from the same inputs and weights. Before timing,
every peer's outputs and gradients are checked against qtrain's in float64 (1e-8).

Timing: float32, repeats interleaved across simulators, medians; torch's threads set
to 1, then to every core (lightning.qubit keeps its own OpenMP threads). A peer whose
steps have taken --budget seconds stops repeating (at least 3 repeats).

The memory bound: a large torch copy gives the machine's bandwidth (same run); each
qtrain step moves about (forward steps + 3 x backward steps) x 2 x state bytes
(every step reads and writes the state once going forward; going back it undoes the
step on the state and on the gradient and reads both for the step's gradient), and
"of bandwidth" is that traffic's time at copy speed over the measured time.

    python benchmarks/peer_simulators.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from qiskit import transpile
from results_table import duration, write_results

from qtrain.quantum import QuantumLayer
from qtrain.quantum.angles import Angles


@dataclass
class Workload:
    qubits: int
    feature_map: str
    reps: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.qubits} qubits, {self.feature_map} + real_amplitudes reps {self.reps}, batch {self.batch}"


WORKLOADS = [Workload(4, "zz", 2, 32), Workload(8, "angle_ry", 2, 64), Workload(12, "angle_ry", 3, 256)]
WORKLOADS += [Workload(16, "angle_ry", 2, 32)]
WIDE = Workload(20, "angle_ry", 2, 8)  # qtrain only: the widest step on a 24 GiB machine
PEERS = {"pennylane": "pennylane", "lightning": "pennylane_lightning", "torchquantum": "torchquantum"}


class Circuit:
    """The workload's circuit as gates (name, qubits, angle column) and its angles in torch."""

    def __init__(self, workload: Workload):
        self.layer = QuantumLayer(
            n_qubits=workload.qubits, feature_map=workload.feature_map, reps=workload.reps, observables="z"
        )
        self.n, self.batch = workload.qubits, workload.batch
        circuit = transpile(self.layer.circuit, basis_gates=["h", "p", "ry", "cx"], optimization_level=0)
        angles = Angles(self.layer.input_params, self.layer.weight_params)
        self.gates = []
        for instruction in circuit.data:
            qubits = [circuit.find_bit(q).index for q in instruction.qubits]
            column = angles.add(instruction.operation.params[0]) if instruction.operation.params else None
            self.gates.append((instruction.operation.name, qubits, column))
        self.angles = angles.compile()

    def qtrain(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.layer.runner.expectations(self.layer.runner.simulator(x, w))


def pennylane_step(circuit: Circuit, device: str, diff_method: str):
    import pennylane as qml

    dev = qml.device(device, wires=circuit.n)
    operations = {"h": qml.Hadamard, "cx": qml.CNOT, "ry": qml.RY, "p": qml.PhaseShift}

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def run(x, w):
        angles = circuit.angles(x, w)
        for name, qubits, column in circuit.gates:
            if column is None:
                operations[name](wires=qubits)
            else:
                operations[name](angles[:, column], wires=qubits)
        return [qml.expval(qml.PauliZ(q)) for q in range(circuit.n)]

    return lambda x, w: torch.stack(list(run(x, w)), dim=1)


def torchquantum_step(circuit: Circuit):
    import torchquantum as tq
    import torchquantum.functional as tqf

    operations = {"h": tqf.hadamard, "cx": tqf.cnot, "ry": tqf.ry, "p": tqf.phaseshift}

    def run(x, w):
        device = tq.QuantumDevice(n_wires=circuit.n, bsz=x.shape[0], device="cpu")
        angles = circuit.angles(x, w)
        for name, qubits, column in circuit.gates:
            wires = qubits if len(qubits) > 1 else qubits[0]
            if column is None:
                operations[name](device, wires=wires)
            else:
                operations[name](device, wires=wires, params=angles[:, column])
        return tq.measurement.expval(device, list(range(circuit.n)), [tq.PauliZ()] * circuit.n)

    return run


def precision(real: torch.dtype) -> None:
    """float64 for the check, float32 for timing. lightning.qubit's values follow torch's
    default dtype; TorchQuantum reads its dtypes from constants each of its modules
    imported, and built Z's eigenvalues and H's matrix (from a rounded 1/sqrt(2)) at import."""
    torch.set_default_dtype(real)
    if "torchquantum" not in sys.modules:
        return
    for name, module in list(sys.modules.items()):
        if name.startswith("torchquantum") and hasattr(module, "C_DTYPE"):
            module.C_DTYPE, module.F_DTYPE = real.to_complex(), real
    tq, hadamard = sys.modules["torchquantum"], sys.modules["torchquantum.functional.hadamard"]
    tq.PauliZ.eigvals = tq.PauliZ.eigvals.to(real.to_complex())
    hadamard._hadamard_mat_dict["hadamard"] = torch.tensor([[1, 1], [1, -1]], dtype=real.to_complex()) / math.sqrt(2)


def simulators(circuit: Circuit, available: set[str]) -> dict:
    steps = {"qtrain": circuit.qtrain}
    if "pennylane" in available:
        steps["pennylane default.qubit"] = pennylane_step(circuit, "default.qubit", "backprop")
    if "lightning" in available:
        steps["pennylane lightning.qubit"] = pennylane_step(circuit, "lightning.qubit", "adjoint")
    if "torchquantum" in available:
        steps["torchquantum-ng"] = torchquantum_step(circuit)
    return steps


def inputs(circuit: Circuit, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(circuit.batch, len(circuit.layer.input_params), generator=generator, dtype=dtype)
    w = torch.rand(len(circuit.layer.weight_params), generator=generator, dtype=dtype) * 2 - 1
    return x.requires_grad_(), w.requires_grad_()


def values_and_grads(step, x, w) -> list[torch.Tensor]:
    values = step(x, w)
    gradients = torch.autograd.grad(values.sum(), (x, w))
    return [values.detach(), *gradients]


def check_against_qtrain(circuit: Circuit, steps: dict) -> None:
    """Every peer's outputs and gradients equal qtrain's, in float64."""
    precision(torch.float64)
    x, w = inputs(circuit, torch.float64)
    reference = values_and_grads(steps["qtrain"], x, w)
    for name, step in steps.items():
        for what, got, expected in zip(
            ("values", "input grads", "weight grads"), values_and_grads(step, x, w), reference
        ):
            if not torch.allclose(got.double(), expected, atol=1e-8, rtol=0):
                difference = (got.double() - expected).abs().max().item()
                raise SystemExit(f"{name} differs from qtrain in {what} by {difference:.2e} on {circuit.n} qubits")
    precision(torch.float32)


def step_seconds(step, x, w) -> float:
    start = time.perf_counter()
    step(x, w).sum().backward()
    x.grad = w.grad = None
    return time.perf_counter() - start


def time_interleaved(steps: dict, x, w, repeats: int, budget: float) -> dict[str, float]:
    for step in steps.values():
        step_seconds(step, x, w)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats):
        for name, step in steps.items():
            if repeat < 3 or sum(times[name]) < budget:
                times[name].append(step_seconds(step, x, w))
    return {name: statistics.median(values) for name, values in times.items()}


def copy_bandwidth(threads: int) -> float:
    """Bytes per second of a 256 MiB torch copy (read + write), median of 5."""
    torch.set_num_threads(threads)
    source, target = torch.ones(64 * 2**20), torch.empty(64 * 2**20)
    seconds = []
    for _ in range(6):
        start = time.perf_counter()
        target.copy_(source)
        seconds.append(time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / statistics.median(seconds[1:])


def state_traffic(circuit: Circuit) -> int:
    simulator = circuit.layer.runner.simulator
    element = 4 if simulator.real else 8  # float32 or complex64
    steps = len(simulator.steps)
    return (steps + 3 * steps) * 2 * circuit.batch * simulator.dim * element


def wide_step() -> dict:
    """The 20-qubit step: its time and the memory it took (peak resident set)."""
    torch.set_num_threads(os.cpu_count() or 1)
    circuit = Circuit(WIDE)
    x, w = inputs(circuit, torch.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = statistics.median(step_seconds(circuit.qtrain, x, w) for _ in range(3))
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    return {"workload": WIDE.label, "threads": torch.get_num_threads(), "simulator": "qtrain", "seconds": seconds,
            "peak_memory_bytes": peak}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per simulator and workload")
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="torch thread counts to time with")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    available = {peer for peer, module in PEERS.items() if importlib.util.find_spec(module) is not None}
    for peer in sorted(set(PEERS) - available):
        print(f"{peer} is not installed (pip install -e '.[bench]'): left out")
    rows = [wide_step()]  # first: its peak memory is the process's high-water mark, before the peers raise it
    for workload in WORKLOADS:
        circuit = Circuit(workload)
        steps = simulators(circuit, available)
        check_against_qtrain(circuit, steps)
        for threads in sorted({int(t) for t in args.threads.split(",")}):
            bandwidth = copy_bandwidth(threads)
            x, w = inputs(circuit, torch.float32)
            medians = time_interleaved(steps, x, w, args.repeats, args.budget)
            for name, seconds in medians.items():
                row = {"workload": workload.label, "threads": threads, "simulator": name, "seconds": seconds}
                row["slower_than_qtrain"] = seconds / medians["qtrain"]
                if name == "qtrain":
                    row["of_bandwidth"] = state_traffic(circuit) / bandwidth / seconds
                rows.append(row)
    write_results(
        args.out,
        "peer_simulators",
        rows,
        ["workload", "torch threads", "simulator", "forward+backward", "vs qtrain", "qtrain at % of copy bandwidth"],
        lambda r: [
            r["workload"],
            str(r["threads"]),
            r["simulator"],
            duration(r["seconds"]),
            f"{r['slower_than_qtrain']:.1f}x slower" if r.get("slower_than_qtrain", 1) != 1 else "",
            f"{100 * r['of_bandwidth']:.1f}%" if "of_bandwidth" in r else _memory(r),
        ],
    )


def _memory(row: dict) -> str:
    return f"peak memory {row['peak_memory_bytes'] / 2**30:.2f} GiB" if "peak_memory_bytes" in row else ""


if __name__ == "__main__":
    main()
