"""The `qiskit` and `aer` backends: qiskit-machine-learning's EstimatorQNN behind TorchConnector.
Both run on the CPU in float64; the values come back on the input's device and dtype.

Under noise (`aer`), the estimator runs the layer's simulated circuit (transpiled to the
device, qtrain.quantum.noise) with the same errors as an Aer NoiseModel, by the
density-matrix method, and takes the expectation of each output's measured observable:
the basis change, the measure error and the readout folded in, which Aer's EstimatorV2
(it computes expectation values without measuring) would otherwise leave out.
"""

from __future__ import annotations

import math

import torch
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qtrain.quantum.noise import NoisyCircuit


class QiskitBackend:
    """The reference: exact StatevectorEstimator, parameter-shift gradients."""

    name = "qiskit"
    method = "statevector"

    def __init__(self, layer, initial: torch.Tensor, shots: int | None, noise: NoisyCircuit | None, seed: int | None):
        self.connector = torch_connector(layer, self.name, noise, seed, initial)
        self.weights = self.connector.weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.connector(x.cpu().to(torch.float64)).to(device=x.device, dtype=x.dtype)


class AerBackend(QiskitBackend):
    """qiskit-aer's EstimatorV2: shots, and the noise of qtrain.quantum.noise."""

    name = "aer"
    method = "density_matrix"


def torch_connector(
    layer, backend: str, noise: NoisyCircuit | None, seed: int | None, initial: torch.Tensor
) -> TorchConnector:
    """A TorchConnector over the layer's circuit and observables (under noise: the
    simulated circuit and the measured observables)."""
    circuit, observables = layer.circuit, layer.observables
    if backend == "qiskit":
        # EstimatorQNN's default precision (0.015625) makes StatevectorEstimator add
        # Gaussian noise; precision 0 keeps this backend an exact reference.
        estimator, precision = StatevectorEstimator(seed=seed), 0.0
    else:
        estimator = aer_estimator(noise, seed)
        if noise is not None:
            circuit = noise.circuit
            observables = [SparsePauliOp(op.paulis, op.coeffs.real) for op in noise.measured_observables()]
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


def aer_estimator(noise: NoisyCircuit | None, seed: int | None) -> AerEstimator:
    """Aer's EstimatorV2, ideal, or with the noisy circuit's errors by the density-matrix method."""
    backend_options = {"seed_simulator": seed} if seed is not None else {}
    if noise is not None:
        backend_options |= {"noise_model": noise.aer_noise_model(), "method": "density_matrix"}
    options = {"backend_options": backend_options, "run_options": {"seed_simulator": seed} if seed is not None else {}}
    return AerEstimator(options=options)
