"""Parameterized qiskit circuits as torch modules: `from qtrain.quantum import QuantumLayer`."""

from qtrain.quantum.layer import QuantumLayer

__all__ = ["QuantumLayer"]
