"""The `torch` backend: the layer's qiskit circuit simulated in torch, with autograd, on
the layer's device and dtype. Ideal: an exact batched statevector
(qtrain.quantum.statevector). Under noise (qtrain.quantum.noisy_simulator): a density
matrix (exact), or trajectories (sampled) for circuits too wide for one. `shots` draws
sampling noise around the values."""

from __future__ import annotations

import psutil
import torch

from qtrain.errors import ArgumentError, byte_size
from qtrain.quantum.expectations import PauliExpectations
from qtrain.quantum.noise import NoisyCircuit
from qtrain.quantum.noisy_simulator import DensityMatrix, Trajectories
from qtrain.quantum.statevector import TorchStatevector
from qtrain.quantum.steps import BackwardThreads, threads_for

# `method: auto` simulates a density matrix up to this many qubits (4**n entries a sample,
# one kept per group for the backward: docs/noise.md has the measured costs), trajectories above.
DENSITY_MATRIX_UP_TO = 8


class TorchBackend:
    def __init__(self, layer, initial: torch.Tensor, shots: int | None, noise: NoisyCircuit | None, seed: int | None):
        self.weights = torch.nn.Parameter(initial)
        self.shots = shots
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if noise is None:
            self._ideal(layer, initial.dtype)
        else:
            self._noisy(layer, noise, initial.dtype)

    def _ideal(self, layer, dtype: torch.dtype) -> None:
        self.method, self.n_qubits = "statevector", layer.circuit.num_qubits
        self.states, self.fixed = STATES_IN_FLIGHT, 0
        check_memory(self.n_qubits, dtype)  # before the simulator allocates anything
        self.simulator = TorchStatevector(layer.circuit, layer.input_params, layer.weight_params)
        self.expectations = PauliExpectations(layer.observables)
        self.size = self.simulator.dim

    def _noisy(self, layer, noise: NoisyCircuit, dtype: torch.dtype) -> None:
        """Autograd keeps a state a group: the batch's, and (density matrix) one per output
        for the part that runs on the observables, whatever the batch."""
        self.method, self.expectations = noise_method(layer.noise["method"], noise.n_qubits), None  # measured inside
        self.n_qubits, self.fixed = noise.n_qubits, 0
        if self.method == "density_matrix":
            self.simulator = DensityMatrix(noise, layer.input_params, layer.weight_params)
            self.size, self.states = 4**noise.n_qubits, len(self.simulator.states.groups) + 2
            self.fixed = (len(self.simulator.observables.groups) + 2) * len(noise.measured) * self.size
        else:
            trajectories = layer.noise["trajectories"]
            self.simulator = Trajectories(noise, layer.input_params, layer.weight_params, trajectories, self.generator)
            self.size, self.states = trajectories * 2**noise.n_qubits, len(self.simulator.program.groups) + 2
        check_memory(self.n_qubits, dtype, size=self.size, states=self.states, what=self.method, fixed=self.fixed)

    @property
    def standard_error(self) -> torch.Tensor | None:
        """The trajectories' standard error of the last values (batch, outputs); else None."""
        return getattr(self.simulator, "standard_error", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * self.size >= CHECKED_FROM:
            check_memory(self.n_qubits, self.weights.dtype, x.shape[0], self.size, self.states, self.method, self.fixed)
        with threads_for(x.shape[0] * self.size) as restore:
            # The weights' dtype: `layer.double()` simulates in complex128, as torch users expect.
            inputs, weights = x.to(self.weights.dtype), self.weights
            if restore is not None and torch.is_grad_enabled():  # the backward on one thread too
                inputs, weights = (BackwardThreads.apply(t, restore, restore) for t in (inputs, weights))
            values = self.simulator(inputs, weights)
            values = self.expectations(values) if self.expectations else values
            if restore is not None and values.requires_grad:
                values = BackwardThreads.apply(values, 1, restore)
            values = self._sample(values) if self.shots else values
            return values.to(dtype=x.dtype)

    def _sample(self, values: torch.Tensor) -> torch.Tensor:
        """Shot noise: each observable is a Pauli string (eigenvalues +-1, also as measured
        with readout errors), so its estimate from `shots` measurements is
        2 * Binomial(shots, (1 + v) / 2) / shots - 1. The gradient passes straight through
        to the exact value."""
        p = ((1 + values.detach()) / 2).clamp(0, 1).cpu().double()
        counts = torch.binomial(torch.full_like(p, float(self.shots)), p, generator=self.generator)
        estimate = (2 * counts / self.shots - 1).to(values)
        return values + (estimate - values.detach())


def noise_method(method: str, n_qubits: int) -> str:
    if method != "auto":
        return method
    return "density_matrix" if n_qubits <= DENSITY_MATRIX_UP_TO else "trajectories"


# States in memory at once: forward keeps the final one beside the one being written; the
# adjoint backward walks back the state and the gradient, each with its next value.
STATES_IN_FLIGHT = 6
CHECKED_FROM = 2**22  # amplitudes (batch x 2**n) from which each forward checks free memory first


def check_memory(
    n_qubits: int,
    dtype: torch.dtype,
    batch: int = 1,
    size: int | None = None,
    states: int = STATES_IN_FLIGHT,
    what: str = "statevector",
    fixed: int = 0,
) -> None:
    """Refuse, before allocating anything, a circuit whose states cannot fit in free
    memory (a sample's when the layer is built, the batch's before a large forward).
    `size`: a sample's entries (2**n for a statevector), `states`: how many are kept,
    `fixed`: entries kept whatever the batch."""
    if not isinstance(n_qubits, int) or n_qubits < 1:
        raise ArgumentError("n_qubits", n_qubits, "must be a positive integer")
    bytes_per_amplitude = (8 if dtype == torch.float32 else 16) // (2 if what == "density_matrix" else 1)  # real
    needed = (batch * (size or 2**n_qubits) * states + fixed) * bytes_per_amplitude
    available = psutil.virtual_memory().available
    if needed > available:
        per, advice = ("per sample", "") if batch == 1 else (f"for a batch of {batch}", " or a smaller batch")
        advice += " or fewer noise.trajectories" if what == "trajectories" else ""
        kind = {"density_matrix": "density matrix", "trajectories": "statevector per trajectory"}.get(what, what)
        raise ArgumentError(
            "n_qubits",
            n_qubits,
            f"a {n_qubits}-qubit {kind} needs about {byte_size(needed)} {per}, "
            f"{byte_size(available)} is free; use fewer qubits{advice}",
        )
