"""Expectation values of Pauli observables on a batch of statevectors."""

from __future__ import annotations

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp

from qtrain.quantum.cache import cached


class PauliExpectations:
    """<psi|O|psi> for a list of SparsePauliOps, batched: a Pauli term maps |k> to
    d(k)|k xor m>, so all terms sharing the flip mask m cost one gather and one matmul.
    A real state (a circuit of real gates) takes the real part of d: the imaginary
    part's terms cancel in the sum."""

    def __init__(self, observables: list[SparsePauliOp]):
        n_qubits = observables[0].num_qubits
        dim = 2**n_qubits
        groups: dict[int, np.ndarray] = {}
        for column, observable in enumerate(observables):
            for pauli, coeff in zip(observable.paulis, observable.coeffs):
                mask = int(sum(1 << q for q in range(n_qubits) if pauli.x[q]))
                values = groups.setdefault(mask, np.zeros((dim, len(observables)), dtype=np.complex128))
                # One entry per column k, at row k ^ mask: the data in column order is d(k).
                values[:, column] += coeff * pauli.to_matrix(sparse=True).tocsc().data
        self.masks = sorted(groups)
        self.values = [groups[mask] for mask in self.masks]
        self.rows = [np.arange(dim) ^ mask for mask in self.masks]
        self._cast: dict = {}

    def _tensors(self, state: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        def make():
            values = [v if state.is_complex() else v.real for v in self.values]
            return [
                (torch.as_tensor(v, dtype=state.dtype, device=state.device), torch.as_tensor(r, device=state.device))
                for v, r in zip(values, self.rows)
            ]

        return cached(self._cast, (state.dtype, state.device), make)

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        total = None
        for mask, (values, rows) in zip(self.masks, self._tensors(state)):
            if mask == 0:
                probabilities = (state.real**2 + state.imag**2).to(state.dtype) if state.is_complex() else state**2
                term = probabilities @ values
            else:
                term = (state[:, rows].conj() * state) @ values
            total = term if total is None else total + term
        return total.real if total.is_complex() else total
