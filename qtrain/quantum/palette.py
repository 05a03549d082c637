"""Every one-qubit matrix of a forward pass sits in one palette (batch, P, 2, 2);
blocks (Kronecker products of a few qubits' gates) and the first layer's product
state are built from it by index tables, one gather and one product each: a few ops
for all blocks, which narrow circuits (bound by op overhead) would otherwise pay per
gate."""

from __future__ import annotations

import numpy as np
import torch


def sample(palette: torch.Tensor, batched: bool) -> torch.Tensor:
    """The palette of each sample, or sample 0's for gates that read no input."""
    return palette if batched else palette[0]


def block_matrices(palette: torch.Tensor, index: torch.Tensor, kron_index: torch.Tensor) -> torch.Tensor:
    """(..., blocks, K, K): each block's matrix, per qubit the product of its gates,
    then the qubits' Kronecker product, taken as one gather and one product (see kron_index)."""
    size = 2 ** index.shape[-1]
    return products(_qubit_products(palette, index).flatten(-3), kron_index).unflatten(-1, (size, size))


def products(factors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """out[..., j] = prod_i factors[..., index[i, j]]: one gather and one product."""
    return factors.index_select(-1, index.flatten()).unflatten(-1, index.shape).prod(-2)


def _qubit_products(palette: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(..., blocks, qubits, 2, 2): each qubit's gates (palette entries, index (blocks,
    depth, qubits)) multiplied in order."""
    # index_select, not indexing: its backward (index_add) is several times faster on small tensors
    gates = palette.index_select(-3, index.flatten()).unflatten(-3, index.shape)
    qubits = gates[..., 0, :, :, :]
    for level in range(1, index.shape[1]):
        qubits = gates[..., level, :, :, :] @ qubits
    return qubits


def first_columns(palette: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(..., qubits, 2): each qubit's gates (index (1, depth, qubits)) applied to |0>,
    as vectors: one multiply and sum per gate after the first, no matrix products."""
    gates = palette.index_select(-3, index.flatten()).unflatten(-3, index.shape[1:])
    state = gates[..., 0, :, :, 0]
    for level in range(1, index.shape[1]):
        state = (gates[..., level, :, :, :] * state[..., None, :]).sum(-1)
    return state


def reads_inputs(gates: list[list[tuple]]) -> bool:
    return any(gate[0] == "rotation" and gate[2] for qubit in gates for gate in qubit)


def kron_index(width: int) -> np.ndarray:
    """Entry (r, c) of the Kronecker product of `width` 2x2 matrices Q_q (qubit q is bit
    q of r and c) is the product over q of Q_q[bit q of r, bit q of c]: row q of this
    index says where that factor sits in the flattened (width, 2, 2) stack."""
    size = 2**width
    rows, columns = np.divmod(np.arange(size * size), size)
    return np.array([4 * q + 2 * ((rows >> q) & 1) + ((columns >> q) & 1) for q in range(width)])


def product_state_index(first: int, width: int) -> np.ndarray:
    """Amplitude k of the product state of qubits first..first+width-1 is the product
    over them of qubit q's amplitude of bit q - first of k: row q - first says where that
    factor sits in the flattened (n, 2) stack of every qubit's state."""
    k = np.arange(2**width)
    return np.array([2 * q + ((k >> (q - first)) & 1) for q in range(first, first + width)])
