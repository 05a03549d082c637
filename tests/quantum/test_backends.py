"""A quantum backend is one registration (qtrain.quantum.backends): a toy one, added
here in a few lines, runs in a layer and in a model built from the config, and the
refusals name it."""

from __future__ import annotations

import pytest
import torch

import qtrain
from qtrain.errors import ArgumentError
from qtrain.quantum import QuantumLayer
from qtrain.quantum.backends import BACKENDS, Backend, register, summary


class Toy:
    """cos of each input shifted by the weights' sum: not a circuit, but a backend."""

    def __init__(self, layer, initial, shots, noise, seed):
        self.weights, self.outputs = torch.nn.Parameter(initial), len(layer.observables)

    def __call__(self, x):
        return torch.cos(x[:, : self.outputs] + self.weights.sum())


@pytest.fixture
def toy():
    register("toy", Backend(f"{__name__}.Toy", "a toy for tests", shots=False))
    yield
    del BACKENDS["toy"]


def test_a_registered_backend_runs_a_layer_with_gradients(toy):
    layer = QuantumLayer(n_qubits=3, backend="toy")
    x = torch.rand(5, 3, requires_grad=True)
    values = layer(x)
    torch.testing.assert_close(values, torch.cos(x + layer.weights.sum()))
    values.sum().backward()
    assert x.grad is not None and layer.weights.grad is not None
    assert list(layer.state_dict()) == ["weights"]


def test_the_refusals_and_the_help_text_list_the_registered_backends(toy):
    with pytest.raises(ArgumentError, match="backend=gpu: use one of torch, qiskit, aer, ibm, toy$"):
        QuantumLayer(n_qubits=2, backend="gpu")
    with pytest.raises(ArgumentError, match="shots=8: the toy backend is exact; use backend=torch or aer or ibm$"):
        QuantumLayer(n_qubits=2, backend="toy", shots=8)
    with pytest.raises(
        ArgumentError,
        match=r"noise.depolarizing=\[0.1, 0.1\]: the toy backend is ideal; noise needs backend=torch or aer or ibm$",
    ):
        QuantumLayer(n_qubits=2, backend="toy", noise={"depolarizing": [0.1, 0.1]})
    assert "toy (a toy for tests)" in summary()


def test_a_registered_backend_is_chosen_from_the_config(toy):
    from hydra.utils import execution_whitelist

    from qtrain.config.targets import TRUSTED_TARGETS
    from qtrain.models.build import build

    cfg = qtrain.compose(["model=cnn_quantum", "model.quantum.n_qubits=3", "model.quantum.backend=toy"])
    with execution_whitelist(TRUSTED_TARGETS):
        model = build(cfg.model)
    assert isinstance(model.head.quantum.runner, Toy)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)
