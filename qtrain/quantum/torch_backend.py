"""The `torch` backend: the layer's qiskit circuit as an exact batched statevector in
torch (qtrain.quantum.statevector), with autograd, on the layer's device and dtype;
`shots` draws sampling noise around the exact values."""

from __future__ import annotations

import math

import psutil
import torch

from qtrain.errors import ArgumentError
from qtrain.quantum.expectations import PauliExpectations
from qtrain.quantum.statevector import TorchStatevector
from qtrain.quantum.steps import BackwardThreads, threads_for


class TorchBackend:
    def __init__(self, layer, initial: torch.Tensor, shots: int | None, noise: dict | None, seed: int | None):
        check_memory(layer.circuit.num_qubits, initial.dtype)
        self.simulator = TorchStatevector(layer.circuit, layer.input_params, layer.weight_params)
        self.expectations = PauliExpectations(layer.observables)
        self.weights = torch.nn.Parameter(initial)
        self.shots = shots
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * self.simulator.dim >= CHECKED_FROM:
            check_memory(self.simulator.n_qubits, self.weights.dtype, batch=x.shape[0])
        with threads_for(x.shape[0] * self.simulator.dim) as restore:
            # The weights' dtype: `layer.double()` simulates in complex128, as torch users expect.
            inputs, weights = x.to(self.weights.dtype), self.weights
            if restore is not None and torch.is_grad_enabled():  # the backward on one thread too
                inputs, weights = (BackwardThreads.apply(t, restore, restore) for t in (inputs, weights))
            values = self.expectations(self.simulator(inputs, weights))
            if restore is not None and values.requires_grad:
                values = BackwardThreads.apply(values, 1, restore)
            values = self._sample(values) if self.shots else values
            return values.to(dtype=x.dtype)

    def _sample(self, values: torch.Tensor) -> torch.Tensor:
        """Shot noise: each observable is a Pauli string (eigenvalues +-1), so its
        estimate from `shots` measurements is 2 * Binomial(shots, (1 + v) / 2) / shots - 1.
        The gradient passes straight through to the exact value."""
        p = ((1 + values.detach()) / 2).clamp(0, 1).cpu().double()
        counts = torch.binomial(torch.full_like(p, float(self.shots)), p, generator=self.generator)
        estimate = (2 * counts / self.shots - 1).to(values)
        return values + (estimate - values.detach())


# States in memory at once: forward keeps the final one beside the one being written; the
# adjoint backward walks back the state and the gradient, each with its next value.
STATES_IN_FLIGHT = 6
CHECKED_FROM = 2**22  # amplitudes (batch x 2**n) from which each forward checks free memory first


def check_memory(n_qubits: int, dtype: torch.dtype, batch: int = 1) -> None:
    """Refuse, before allocating anything, a circuit whose statevectors cannot fit in
    free memory (a sample's when the layer is built, the batch's before a large forward)."""
    if not isinstance(n_qubits, int) or n_qubits < 1:
        raise ArgumentError("n_qubits", n_qubits, "must be a positive integer")
    bytes_per_amplitude = 8 if dtype == torch.float32 else 16
    needed = batch * 2**n_qubits * bytes_per_amplitude * STATES_IN_FLIGHT
    available = psutil.virtual_memory().available
    if needed > available:
        what, advice = ("per sample", "") if batch == 1 else (f"for a batch of {batch}", " or a smaller batch")
        raise ArgumentError(
            "n_qubits",
            n_qubits,
            f"a {n_qubits}-qubit statevector needs about {_bytes(needed)} {what}, "
            f"{_bytes(available)} is free; use fewer qubits{advice}",
        )


def _bytes(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    power = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024**power:.1f} {units[power]}"
