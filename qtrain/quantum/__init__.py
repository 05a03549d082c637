"""Parameterized qiskit circuits as torch modules: `from qtrain.quantum import QuantumLayer`.

The layer loads torch and qiskit when first asked for, so that the backends' registry
(qtrain.quantum.backends) is read without them (`python -m qtrain --help`)."""

__all__ = ["QuantumLayer"]


def __getattr__(name: str):
    if name == "QuantumLayer":
        from qtrain.quantum.layer import QuantumLayer

        return QuantumLayer
    raise AttributeError(f"module 'qtrain.quantum' has no attribute {name!r}")
