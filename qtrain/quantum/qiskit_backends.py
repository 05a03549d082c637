"""The `qiskit` and `aer` backends: qiskit-machine-learning's EstimatorQNN behind TorchConnector.
Both run on the CPU in float64; the values come back on the input's device and dtype.

The same code path runs real hardware: replace the Aer estimator with
qiskit-ibm-runtime's `EstimatorV2(mode=backend)` and transpile with that backend's
pass manager, as the fake-device branch below does for a simulated device.
"""

from __future__ import annotations

import importlib
import math

import torch
from qiskit.primitives import StatevectorEstimator
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qtrain.errors import ArgumentError


class QiskitBackend:
    """The reference: exact StatevectorEstimator, parameter-shift gradients."""

    name = "qiskit"

    def __init__(self, layer, initial: torch.Tensor, shots: int | None, noise: dict | None, seed: int | None):
        self.connector = torch_connector(layer, self.name, noise, seed, initial)
        self.weights = self.connector.weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.connector(x.cpu().to(torch.float64)).to(device=x.device, dtype=x.dtype)


class AerBackend(QiskitBackend):
    """qiskit-aer's EstimatorV2: shots, depolarizing noise or a fake IBM device's."""

    name = "aer"


def torch_connector(layer, backend: str, noise: dict | None, seed: int | None, initial: torch.Tensor) -> TorchConnector:
    """A TorchConnector over the layer's circuit and observables."""
    circuit, observables = layer.circuit, layer.observables
    if backend == "qiskit":
        # EstimatorQNN's default precision (0.015625) makes StatevectorEstimator add
        # Gaussian noise; precision 0 keeps this backend an exact reference.
        estimator, precision = StatevectorEstimator(seed=seed), 0.0
    else:
        estimator, pass_manager = aer_estimator(noise, seed)
        if pass_manager is not None:  # a device: its qubits, gates and layout
            circuit = pass_manager.run(circuit)
            observables = [op.apply_layout(circuit.layout) for op in observables]
        # Aer's EstimatorV2 computes exact expectations and models `precision` as Gaussian
        # noise: 1/sqrt(shots) is the spread of a +-1 observable measured `shots` times.
        precision = 0.0 if layer.shots is None else 1 / math.sqrt(layer.shots)
    qnn = EstimatorQNN(
        circuit=circuit,
        estimator=estimator,
        observables=observables,
        input_params=layer.input_params,
        weight_params=layer.weight_params,
        input_gradients=True,
        default_precision=precision,
    )
    connector = TorchConnector(qnn, initial_weights=initial.numpy())
    connector.weight.data = initial.double().clone()  # TorchConnector stores float32; keep the reference exact
    return connector


def _require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ArgumentError("backend", "aer", f"needs {module}: pip install -e '.[{extra}]'") from None


def aer_estimator(noise: dict | None, seed: int | None):
    """Aer's EstimatorV2, ideal, with a depolarizing model, or with a fake IBM device's
    noise model (the circuit is then transpiled to that device)."""
    primitives = _require("qiskit_aer.primitives", "aer")
    noise = dict(noise or {})
    backend_options = {"seed_simulator": seed} if seed is not None else {}
    pass_manager = None
    unknown = set(noise) - {"depolarizing", "device"}
    if unknown:
        raise ArgumentError("noise", dict(noise), "use {depolarizing: [p1, p2]} or {device: FakeManilaV2}")
    if noise.get("depolarizing"):
        backend_options["noise_model"] = depolarizing_model(*noise["depolarizing"])
    if noise.get("device"):
        from qiskit.transpiler import generate_preset_pass_manager

        noise_model = _require("qiskit_aer.noise", "aer").NoiseModel
        fake_provider = _require("qiskit_ibm_runtime.fake_provider", "ibm")
        name = noise["device"]
        if not hasattr(fake_provider, name):
            raise ArgumentError("noise.device", name, "not in qiskit_ibm_runtime.fake_provider, e.g. FakeManilaV2")
        device = getattr(fake_provider, name)()
        backend_options["noise_model"] = noise_model.from_backend(device)
        pass_manager = generate_preset_pass_manager(optimization_level=1, backend=device, seed_transpiler=seed)
    options = {"backend_options": backend_options, "run_options": {"seed_simulator": seed} if seed is not None else {}}
    return primitives.EstimatorV2(options=options), pass_manager


def depolarizing_model(p1: float, p2: float):
    noise = _require("qiskit_aer.noise", "aer")
    model = noise.NoiseModel()
    model.add_all_qubit_quantum_error(noise.depolarizing_error(p1, 1), ["h", "rx", "ry", "rz", "p", "u", "sx", "x"])
    model.add_all_qubit_quantum_error(noise.depolarizing_error(p2, 2), ["cx", "cz", "swap"])
    return model
