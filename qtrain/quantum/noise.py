"""Noise a QuantumLayer simulates, as a `NoisyCircuit`: the circuit as it runs (transpiled
to a fake IBM device, or the layer's own gates for the generic models), each
instruction's error channel, and each output as it is measured on a device.

The errors come from qiskit-aer's public `basic_device_gate_errors` and
`basic_device_readout_errors`, the two functions `NoiseModel.from_backend` builds its model
from (gate errors: depolarizing and thermal relaxation with the gate times; readout
assignment errors; no delays, since these circuits have none). The readout errors are the
calibration's P(0|1) and P(1|0), as qiskit-ibm-runtime's local testing mode takes them
(from_backend, reading the target, has only their mean). The generic models put
`depolarizing_error(p1, 1)` after every one-qubit gate and `depolarizing_error(p2, 2)` after
every two-qubit gate of the layer's own circuit (its gates as qiskit's library writes them:
h, p, rx, ry, rz, cx, ...) and a `ReadoutError` on every qubit.

Measuring a Pauli string as a device does: the basis-change gates (H for X, S^dag H for
Y; a Z needs none) with their noise, then the readout confusion matrices on the
measured bits (`from_backend` puts no other error on `measure`). Both act on single
qubits, so an output is exactly the expectation of an effective observable, each Pauli
factor P_q replaced by B_q^dag(diag(1 - 2 p(1|0), 2 p(0|1) - 1)) (the adjoint channel of
the noisy basis change applied to the readout-weighted Z): what `measured` holds, and
what both the torch and the aer backends take the expectation of.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import Kraus, Operator, SparsePauliOp

from qtrain.errors import ArgumentError

KEYS = ("device", "depolarizing", "readout", "method", "trajectories")
SOURCES = ("device", "depolarizing", "readout")  # the keys that make noise; the others choose how
METHODS = ("auto", "density_matrix", "trajectories")
# The gates the generic models' circuit is written in: the library's own, unchanged.
GENERIC_GATES = {"h": 1, "x": 1, "y": 1, "z": 1, "s": 1, "sdg": 1, "sx": 1, "rx": 1, "ry": 1, "rz": 1, "p": 1}
GENERIC_GATES |= {"cx": 2, "cz": 2, "swap": 2}
ROTATIONS = ("rx", "ry", "rz", "p")  # the parameterized gates a simulated circuit may hold
BASIS_CHANGE = {"X": ["h"], "Y": ["sdg", "h"]}


def check_noise(noise, hardware: bool = False) -> dict | None:
    """The noise spec with its defaults, None when it asks for no noise; refused in a
    line naming the key when a value is not one this module can simulate (`hardware`: the
    device is one to run on, checked by its backend)."""
    if noise is None:
        return None
    if not hasattr(noise, "items"):
        raise ArgumentError("noise", noise, "use a mapping: {device: FakeNairobiV2}, {depolarizing: [p1, p2]}, ...")
    noise = {key: _plain(value) for key, value in dict(noise).items() if value is not None}
    for key in set(noise) - set(KEYS):
        raise ArgumentError(f"noise.{key}", noise[key], f"use one of {', '.join(KEYS)}")
    method = noise.setdefault("method", "auto")
    if method not in METHODS:
        raise ArgumentError("noise.method", method, f"use one of {', '.join(METHODS)}")
    trajectories = noise.setdefault("trajectories", 256)
    if isinstance(trajectories, bool) or not isinstance(trajectories, int) or trajectories < 2:
        raise ArgumentError("noise.trajectories", trajectories, "an integer >= 2 (the samples per input)")
    if not any(key in noise for key in SOURCES):
        return None
    if "device" in noise:
        if not hardware:
            device_class(noise["device"])
        for key in set(noise) & {"depolarizing", "readout"}:
            raise ArgumentError(f"noise.{key}", noise[key], "a device brings its own noise; drop it or noise.device")
    if "depolarizing" in noise:
        _probabilities("depolarizing", noise["depolarizing"], 2, "[p1, p2]: after each one- and two-qubit gate")
    if "readout" in noise:
        value = noise["readout"]
        _probabilities("readout", value, None, "p or [p(1|0), p(0|1)]")
    return noise


def _plain(value):
    """A config's value as Python's: a list (a ListConfig is a Sequence)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


def _probabilities(key: str, given, count: int | None, accepted: str) -> None:
    """`given`: `count` probabilities, or (count None) one or a pair."""
    values = [given] if count is None and isinstance(given, Real) else given
    ok = isinstance(values, (list, tuple)) and len(values) in ((count,) if count else (1, 2))
    if not ok or not all(isinstance(p, Real) and not isinstance(p, bool) and 0 <= p <= 1 for p in values):
        raise ArgumentError(f"noise.{key}", given, f"use {accepted}, each a probability in [0, 1]")


def device_names() -> list[str]:
    import qiskit_ibm_runtime.fake_provider as provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    return sorted(
        name
        for name in dir(provider)
        if isinstance(getattr(provider, name), type) and issubclass(getattr(provider, name), FakeBackendV2)
    )


def device_class(name) -> type:
    import qiskit_ibm_runtime.fake_provider as provider

    names = device_names()
    if not isinstance(name, str) or name not in names:
        close = difflib.get_close_matches(str(name), names, n=3) or ["FakeManilaV2", "FakeNairobiV2", "FakeTorino"]
        raise ArgumentError(
            "noise.device",
            name,
            f"use a fake device of qiskit-ibm-runtime, e.g. {', '.join(close)} ({len(names)} in all)",
        )
    return getattr(provider, name)


def check_width(n_qubits, name: str) -> None:
    width = device_class(name)().num_qubits
    if isinstance(n_qubits, int) and n_qubits > width:
        raise ArgumentError("n_qubits", n_qubits, f"{name} has {width} qubits; use at most {width} or a wider device")


@functools.lru_cache(maxsize=4)
def device(name: str):
    """A fake device and its errors, read once per process (FakeTorino's take seconds)."""
    backend = device_class(name)()
    from qiskit_aer.noise.device import basic_device_gate_errors, basic_device_readout_errors

    gate_errors = {
        (gate, tuple(qubits)): error for gate, qubits, error in basic_device_gate_errors(target=backend.target)
    }
    # P(0|1) and P(1|0) from the calibration, as qiskit-ibm-runtime's local testing mode
    # reads them (the target alone has their mean: from_backend's readout is symmetric).
    source = {"properties": backend.properties()} if hasattr(backend, "properties") else {"target": backend.target}
    readout = {qubits[0]: np.asarray(error.probabilities) for qubits, error in basic_device_readout_errors(**source)}
    return backend, gate_errors, readout


GateError = tuple[str, "tuple[int, ...] | None", object]  # (gate, its qubits or None: all, a QuantumError)


@dataclass
class Instruction:
    qubits: tuple[int, ...]  # simulated qubits, the instruction's qubit 0 first (qiskit's bit 0)
    matrix: np.ndarray | None  # its unitary, or None for a rotation by `angle`
    name: str
    angle: object = None  # a ParameterExpression (or number) for the rotations
    kraus: list[np.ndarray] | None = None  # the error after it, or None


@dataclass
class NoisyCircuit:
    circuit: QuantumCircuit  # the layer's `simulated_circuit`
    observables: list[SparsePauliOp]  # `simulated_observables`, on the circuit's qubits
    qubits: list[int]  # the circuit's qubit behind each simulated qubit
    instructions: list[Instruction]
    measured: list[list[tuple[complex, dict[int, np.ndarray]]]]  # per output: (coeff, {qubit: 2x2})
    record: dict = field(default_factory=dict)
    errors: list[GateError] = field(default_factory=list)
    readout: dict[int, np.ndarray] = field(default_factory=dict)  # circuit qubit -> P(measured | prepared)

    @property
    def n_qubits(self) -> int:
        return len(self.qubits)

    def aer_noise_model(self):
        """The same gate and readout errors as a qiskit-aer NoiseModel."""
        from qiskit_aer.noise import NoiseModel, ReadoutError

        model = NoiseModel()
        for gate, qubits, error in self.errors:
            if qubits is None:
                model.add_all_qubit_quantum_error(error, gate)
            else:
                model.add_quantum_error(error, gate, list(qubits))
        for qubit, probabilities in self.readout.items():
            model.add_readout_error(ReadoutError(probabilities), [qubit])
        return model

    def measured_observables(self) -> list[SparsePauliOp]:
        """The effective observables (`measured`) as SparsePauliOps on the circuit's qubits."""
        return [self._as_pauli_op(terms) for terms in self.measured]

    def _as_pauli_op(self, terms) -> SparsePauliOp:
        total = None
        width = self.circuit.num_qubits
        for coeff, factors in terms:
            op = SparsePauliOp("I" * width, coeffs=[coeff])
            for qubit, matrix in factors.items():
                local = SparsePauliOp.from_operator(Operator(matrix))
                op = op.compose(local, qargs=[self.qubits[qubit]])
            total = op if total is None else total + op
        return total.simplify(atol=1e-14)


def noisy_circuit(layer, noise: dict, seed: int | None) -> NoisyCircuit:
    """The layer's circuit under `noise` (a spec check_noise returned)."""
    if "device" in noise:
        return _on_device(layer, noise["device"], seed)
    return _generic(layer, noise)


def _on_device(layer, name: str, seed: int | None) -> NoisyCircuit:
    from qiskit.transpiler import generate_preset_pass_manager

    backend, gate_errors, readout = device(name)
    passes = generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=seed or 0)
    circuit = passes.run(layer.circuit)
    observables = [op.apply_layout(circuit.layout) for op in layer.observables]
    qubits = _used_qubits(circuit, observables)

    def error(gate: str, on: tuple[int, ...]):
        return gate_errors.get((gate, on))

    basis = [gate for gate in ("rz", "sx", "x") if gate in backend.operation_names]
    changes = {p: _basis_change(p, basis) for p in BASIS_CHANGE}
    errors = [(g, q, e) for (g, q), e in gate_errors.items() if set(q) <= set(qubits)]
    calibrated = backend.properties().last_update_date if hasattr(backend, "properties") else None
    record = {
        "device": name,
        "calibrated": str(calibrated) if calibrated else None,
        "layout": circuit.layout.final_index_layout(),
        "transpiler_seed": seed or 0,
    }
    readout = {q: readout[q] for q in qubits if q in readout}
    return _build(circuit, observables, qubits, error, changes, readout, errors, record)


def _generic(layer, noise: dict) -> NoisyCircuit:
    from qiskit_aer.noise import depolarizing_error

    circuit = transpile(layer.circuit, basis_gates=list(GENERIC_GATES), optimization_level=0)
    p1, p2 = noise.get("depolarizing", (0, 0))
    by_size = {1: depolarizing_error(p1, 1) if p1 else None, 2: depolarizing_error(p2, 2) if p2 else None}

    def error(gate: str, on: tuple[int, ...]):
        return by_size[len(on)]

    qubits = list(range(circuit.num_qubits))
    changes = {p: _basis_change(p, None) for p in BASIS_CHANGE}
    # on every qubit (None), as NoiseModel.add_all_qubit_quantum_error puts them
    errors = [(gate, None, by_size[size]) for gate, size in GENERIC_GATES.items() if by_size[size] is not None]
    readout = {}
    if "readout" in noise:
        value = noise["readout"]
        flip0, flip1 = (value, value) if isinstance(value, Real) else (value[0], value[-1])
        readout = {q: np.array([[1 - flip0, flip0], [flip1, 1 - flip1]]) for q in qubits}
    record = {key: noise[key] for key in ("depolarizing", "readout") if key in noise}
    return _build(circuit, list(layer.observables), qubits, error, changes, readout, errors, record)


def _used_qubits(circuit: QuantumCircuit, observables) -> list[int]:
    used = {circuit.find_bit(q).index for instruction in circuit.data for q in instruction.qubits}
    for op in observables:
        for pauli in op.paulis:
            used |= set(np.flatnonzero(pauli.x | pauli.z).tolist())
    return sorted(used)


def _basis_change(pauli: str, basis: list[str] | None) -> QuantumCircuit:
    """The gates that turn a measurement of Z into one of `pauli`, in the device's basis."""
    circuit = QuantumCircuit(1)
    for gate in BASIS_CHANGE[pauli]:
        getattr(circuit, gate)(0)
    return transpile(circuit, basis_gates=basis, optimization_level=1) if basis else circuit


def _build(circuit, observables, qubits, error, changes, readout, errors, record) -> NoisyCircuit:
    index = {q: i for i, q in enumerate(qubits)}
    instructions = []
    for item in circuit.data:
        operation = item.operation
        on = tuple(circuit.find_bit(q).index for q in item.qubits)
        if operation.name in ("barrier", "delay"):
            continue
        free = any(isinstance(p, ParameterExpression) and p.parameters for p in operation.params)
        if free and operation.name not in ROTATIONS:
            raise ValueError(f"cannot simulate the parameterized gate {operation.name}")
        matrix = None if free else Operator(operation).data
        angle = operation.params[0] if free else None
        instructions.append(
            Instruction(tuple(index[q] for q in on), matrix, operation.name, angle, _kraus(error(operation.name, on)))
        )
    measured = []
    for op in observables:
        terms = []
        for pauli, coeff in zip(op.paulis, op.coeffs):
            factors = {}
            for q in np.flatnonzero(pauli.x | pauli.z):
                label = "IXZY"[int(pauli.x[q]) + 2 * int(pauli.z[q])]
                factors[index[int(q)]] = _measured_factor(label, int(q), error, changes, readout)
            terms.append((complex(coeff), factors))
        measured.append(terms)
    return NoisyCircuit(circuit, observables, qubits, instructions, measured, record, errors, readout)


def _measured_factor(pauli: str, qubit: int, error, changes, readout) -> np.ndarray:
    """B^dag(R): what measuring `pauli` on `qubit` reads, as an operator before the basis
    change (module docstring)."""
    confusion = readout.get(qubit, np.eye(2))
    operator = np.diag([confusion[0, 0] - confusion[0, 1], confusion[1, 0] - confusion[1, 1]]).astype(complex)
    if pauli != "Z":
        for item in reversed(changes[pauli].data):
            gate = Operator(item.operation).data
            operator = _adjoint(_kraus(error(item.operation.name, (qubit,))), operator)
            operator = gate.conj().T @ operator @ gate
    return operator


def _adjoint(kraus: list[np.ndarray] | None, operator: np.ndarray) -> np.ndarray:
    if kraus is None:
        return operator
    return sum(k.conj().T @ operator @ k for k in kraus)


def _kraus(error) -> list[np.ndarray] | None:
    if error is None:
        return None
    return [np.asarray(k) for k in Kraus(error.to_quantumchannel()).data]
