"""The backends a QuantumLayer runs its circuit on, by name: the one list that the
layer's refusals, the config's help text and the docs read.

A backend is a class, named by its import path and imported when a layer first uses it
(so this module loads neither torch nor qiskit, and `--help` stays fast). It is built as
`cls(layer, initial, shots=..., noise=..., seed=...)` (`noise`: the layer's
qtrain.quantum.noise.NoisyCircuit, or None), keeps the layer's trainable
weights as `.weights` (one nn.Parameter, starting from `initial`, ordered like
`layer.weight_params`), names its simulation `.method` and, called with a (batch, n_inputs) tensor, returns the
(batch, n_outputs) expectation values of `layer.observables` with gradients to both.

A new backend is one `register(...)` call: the layer, the config and the refusals
take it from there (tests/quantum/test_backends.py adds a toy one).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from qtrain.errors import ArgumentError


@dataclass(frozen=True)
class Backend:
    target: str  # "module.Class" of the implementation
    summary: str  # one line, for the help text and the docs
    shots: bool = True  # takes `shots` (sampling noise); False: exact only
    noise: bool = False  # takes a noise model (`noise`)
    hardware: bool = False  # runs on the device `noise.device` names, not a simulation of it
    check: str | None = None  # "module.function"(n_qubits, shots, noise spec): its own refusals

    def load(self) -> type:
        return _find(self.target)


def _find(target: str):
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


BACKENDS: dict[str, Backend] = {}


def register(name: str, backend: Backend) -> None:
    BACKENDS[name] = backend


register(
    "torch",
    Backend("qtrain.quantum.torch_backend.TorchBackend", "batched statevector or density matrix in torch", noise=True),
)
register(
    "qiskit",
    Backend("qtrain.quantum.qiskit_backends.QiskitBackend", "qiskit-machine-learning's EstimatorQNN", shots=False),
)
register("aer", Backend("qtrain.quantum.qiskit_backends.AerBackend", "qiskit-aer: shots and noise", noise=True))
register(
    "ibm",
    Backend(
        "qtrain.quantum.ibm_backend.IbmBackend",
        "IBM Quantum through qiskit-ibm-runtime, evaluation only",
        noise=True,
        hardware=True,
        check="qtrain.quantum.ibm_backend.check_device",
    ),
)


def check(n_qubits: int, name: str, shots: int | None, noise) -> tuple[Backend, dict | None]:
    """A layer's backend options, checked before anything is built (the layer, and the
    config before a run starts): the backend, and the noise spec (None: ideal)."""
    from qtrain.quantum.noise import check_noise, check_width  # qiskit loads for a run, not for `--help`

    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise ArgumentError("shots", shots, "use null (exact) or a positive integer")
    hardware = name in BACKENDS and BACKENDS[name].hardware
    spec = check_noise(noise, hardware)
    chosen = backend(name, shots, spec)
    if chosen.check:
        _find(chosen.check)(n_qubits, shots, spec)
    elif spec is not None and "device" in spec:
        check_width(n_qubits, spec["device"])
    return chosen, spec


def check_run(node, train: bool) -> tuple[Backend, dict | None]:
    """A run's circuit (a mapping of the layer's arguments): `check`'s refusals, and a
    hardware backend's: it evaluates, since training would send two jobs per parameter a step."""
    chosen, spec = check(node["n_qubits"], node["backend"], node["shots"], node.get("noise"))
    if chosen.hardware and train:
        raise ArgumentError(
            "backend",
            node["backend"],
            "evaluates a trained model on a device: train=false ckpt_path=<run>/checkpoints/best.pt "
            "(training would send two jobs per parameter for every step)",
        )
    return chosen, spec


def backend(name: str, shots: int | None, noise: dict | None) -> Backend:
    """The backend `name`, refused in a line when unknown or when it cannot take the
    shots or noise asked of it."""
    if name not in BACKENDS:
        raise ArgumentError("backend", name, f"use one of {', '.join(BACKENDS)}")
    chosen = BACKENDS[name]
    if shots is not None and not chosen.shots:
        raise ArgumentError("shots", shots, f"the {name} backend is exact; use backend={_with('shots')}")
    if noise and not chosen.noise:
        key = next(key for key in ("device", "depolarizing", "readout") if key in noise)
        raise ArgumentError(
            f"noise.{key}", noise[key], f"the {name} backend is ideal; noise needs backend={_with('noise')}"
        )
    return chosen


def _with(feature: str) -> str:
    return " or ".join(name for name, spec in BACKENDS.items() if getattr(spec, feature))


def summary() -> str:
    """`torch (exact batched statevector in torch), qiskit (...), ...`: for help texts."""
    return ", ".join(f"{name} ({spec.summary})" for name, spec in BACKENDS.items())
