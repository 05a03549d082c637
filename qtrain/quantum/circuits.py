"""Parameterized circuits and observables from a spec, built with qiskit 2.x."""

from __future__ import annotations

from collections.abc import Sequence

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import efficient_su2, real_amplitudes, z_feature_map, zz_feature_map
from qiskit.quantum_info import SparsePauliOp

from qtrain.errors import ArgumentError

ENTANGLEMENTS = ("linear", "circular", "full")


def _angle_encoding(gate: str):
    """One rotation per qubit by the matching input: RY(x_i) or RX(x_i). Hand-built,
    since qiskit's library has no plain angle encoding."""

    def build(n_qubits: int, reps: int, entanglement: str) -> QuantumCircuit:
        x = ParameterVector("x", n_qubits)
        circuit = QuantumCircuit(n_qubits)
        for q in range(n_qubits):
            getattr(circuit, gate)(x[q], q)
        return circuit

    return build


FEATURE_MAPS = {
    "zz": lambda n, reps, ent: zz_feature_map(n, reps=reps, entanglement=ent),
    "z": lambda n, reps, ent: z_feature_map(n, reps=reps),
    "angle_ry": _angle_encoding("ry"),
    "angle_rx": _angle_encoding("rx"),
}
ANSATZE = {
    "real_amplitudes": lambda n, reps, ent: real_amplitudes(n, reps=reps, entanglement=ent),
    "efficient_su2": lambda n, reps, ent: efficient_su2(n, reps=reps, entanglement=ent),
}


def _choice(argument: str, value: str, options) -> None:
    if value not in options:
        raise ArgumentError(argument, value, f"use one of {', '.join(options)}")


def build_circuit(
    n_qubits: int,
    feature_map: str = "zz",
    ansatz: str = "real_amplitudes",
    reps: int = 2,
    entanglement: str = "linear",
    feature_map_reps: int = 1,
    reupload: int = 1,
) -> tuple[QuantumCircuit, list, list]:
    """The circuit `(feature map, ansatz)` repeated `reupload` times (data re-uploading:
    the same inputs enter every repetition, each ansatz has its own weights).
    Returns the circuit and its input and weight parameters, each in order."""
    _choice("feature_map", feature_map, FEATURE_MAPS)
    _choice("ansatz", ansatz, ANSATZE)
    _choice("entanglement", entanglement, ENTANGLEMENTS)
    if not isinstance(n_qubits, int) or n_qubits < 1:
        raise ArgumentError("n_qubits", n_qubits, "must be a positive integer")
    if feature_map == "zz" and n_qubits < 2:
        raise ArgumentError("feature_map", feature_map, "zz needs at least 2 qubits; use z or angle_ry")
    for key, value, least in (("reps", reps, 0), ("feature_map_reps", feature_map_reps, 1), ("reupload", reupload, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ArgumentError(key, value, f"must be an integer >= {least}")
    encoder = FEATURE_MAPS[feature_map](n_qubits, feature_map_reps, entanglement)
    inputs = list(encoder.parameters)
    circuit = QuantumCircuit(n_qubits)
    weights = []
    for layer in range(reupload):
        block = ANSATZE[ansatz](n_qubits, reps, entanglement)
        fresh = ParameterVector(f"w{layer}", block.num_parameters)
        block = block.assign_parameters(dict(zip(block.parameters, fresh)))
        circuit.compose(encoder, inplace=True)
        circuit.compose(block, inplace=True)
        weights += list(fresh)
    return circuit, inputs, weights


def build_observables(spec: str | Sequence[str], n_qubits: int) -> list[SparsePauliOp]:
    """`z`: Z on each qubit; `zz`: Z_i Z_(i+1) on neighbours; or Pauli strings written
    as qiskit does (rightmost character = qubit 0), e.g. ["XXII", "ZIZI"]."""
    if spec == "z":
        labels = [_single(n_qubits, {q: "Z"}) for q in range(n_qubits)]
    elif spec == "zz":
        if n_qubits < 2:
            raise ArgumentError("observables", spec, "zz needs at least 2 qubits; use z")
        labels = [_single(n_qubits, {q: "Z", q + 1: "Z"}) for q in range(n_qubits - 1)]
    elif isinstance(spec, str):
        raise ArgumentError("observables", spec, "use z, zz or a list of Pauli strings")
    else:
        labels = list(spec)
        for label in labels:
            if len(label) != n_qubits or set(label) - set("IXYZ"):
                raise ArgumentError("observables", label, f"a Pauli string is {n_qubits} characters of I, X, Y, Z")
    return [SparsePauliOp(label) for label in labels]


def _single(n_qubits: int, paulis: dict[int, str]) -> str:
    return "".join(paulis.get(q, "I") for q in reversed(range(n_qubits)))
