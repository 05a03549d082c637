"""A run of diagonal and permutation gates (P, RZ, CP, RZZ, Z, S, T, CZ, X, CX, SWAP, Y)
compiled into where each basis state goes and the phase it picks up: applied as one
phase multiply and one gather (steps.PhaseStep), however many gates the run holds."""

from __future__ import annotations

import math

import numpy as np
from qiskit import QuantumCircuit
from qiskit.converters import circuit_to_dag

from qtrain.quantum.angles import Angles

# The one-qubit gates that are neither diagonal nor permutations: they end a run.
MATRIX_GATES = ("h", "sx", "rx", "ry", "u")

CONSTANT_PHASES = {"z": math.pi, "s": math.pi / 2, "sdg": -math.pi / 2, "t": math.pi / 4, "tdg": -math.pi / 4}


class PhaseRun:
    """A run of diagonal/permutation gates being compiled: where each basis state goes,
    and the phase it picks up (constant + angles @ patterns)."""

    def __init__(self, dim: int):
        self.perm = np.arange(dim)
        self.constant = np.zeros(dim)
        self.columns: list[tuple[int, np.ndarray]] = []  # (angle index, pattern)

    def bits(self, qubit: int) -> np.ndarray:
        """Bit `qubit` of the current output index of each input basis state."""
        return (self.perm >> qubit) & 1

    def add(self, gate: str, params, qubits, angles: Angles) -> None:
        bit, dim = self.bits, len(self.perm)
        if gate in ("p", "rz", "cp", "rzz"):
            pattern = {
                "p": lambda: bit(qubits[0]),
                "rz": lambda: bit(qubits[0]) - 0.5,
                "cp": lambda: bit(qubits[0]) * bit(qubits[1]),
                "rzz": lambda: -0.5 * (1 - 2 * (bit(qubits[0]) ^ bit(qubits[1]))),
            }[gate]()
            self.columns.append((angles.add(params[0]), pattern.astype(np.float64)))
        elif gate in CONSTANT_PHASES:
            self.constant += CONSTANT_PHASES[gate] * bit(qubits[0])
        elif gate == "cz":
            self.constant += math.pi * bit(qubits[0]) * bit(qubits[1])
        elif gate == "y":  # Y = i X Z
            self.constant += math.pi * bit(qubits[0]) + math.pi / 2 * np.ones(dim)
            self.perm = self.perm ^ (1 << qubits[0])
        elif gate in ("x", "cx"):
            mask = 1 if gate == "x" else bit(qubits[0])
            self.perm = self.perm ^ (mask << qubits[-1])
        elif gate == "swap":
            differ = bit(qubits[0]) ^ bit(qubits[1])
            self.perm = self.perm ^ ((differ << qubits[0]) | (differ << qubits[1]))
        else:  # transpile() guarantees the basis; this is a bug, not bad input
            raise NotImplementedError(gate)

    def is_real(self) -> bool:
        return not self.columns and bool(np.allclose(np.sin(self.constant), 0))


def in_runs(circuit: QuantumCircuit) -> list:
    """The instructions in an order the circuit allows (a topological order of its DAG)
    that keeps gates of one kind together: while a gate of the kind just placed
    (matrix, or diagonal/permutation) is ready it goes next, so that the H gates of
    a feature map's second repetition do not cut the phase run of its first."""
    dag = circuit_to_dag(circuit)
    waiting = {node: len(list(dag.op_predecessors(node))) for node in dag.op_nodes()}
    ready = [node for node, count in waiting.items() if count == 0]
    order, matrix_run = [], True
    while ready:
        same_kind = [node for node in ready if (node.op.name in MATRIX_GATES) == matrix_run]
        node = min(same_kind or ready, key=lambda n: n._node_id)
        matrix_run = node.op.name in MATRIX_GATES
        ready.remove(node)
        order.append(node)
        for successor in dag.op_successors(node):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.append(successor)
    return order
