"""The quantum contract: circuits from a spec, the torch statevector against qiskit, backends agree."""

from __future__ import annotations

import itertools
import math
import types

import numpy as np
import psutil
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from qtrain.errors import ArgumentError
from qtrain.quantum import QuantumLayer, statevector
from qtrain.quantum.circuits import ANSATZE, ENTANGLEMENTS, FEATURE_MAPS, build_circuit, build_observables
from qtrain.quantum.expectations import PauliExpectations
from qtrain.quantum.statevector import TorchStatevector

OBSERVABLES = ["z", "zz", "paulis"]


def observables_for(spec: str, n: int, rng) -> list[SparsePauliOp]:
    if spec == "paulis":  # random strings with X and Y, which the phase trick does not cover
        return build_observables(["".join(rng.choice(list("IXYZ"), n)) for _ in range(3)], n)
    return build_observables(spec, n)


COMBINATIONS = [
    (fm, an, ent, obs, n)
    for fm, an, ent, obs in itertools.product(FEATURE_MAPS, ANSATZE, ENTANGLEMENTS, OBSERVABLES)
    for n in range(1, 9)
    if not (n == 1 and (fm == "zz" or obs == "zz"))
]


@pytest.fixture(params=["adjoint", "autograd"])
def backward(request, monkeypatch):
    """Both ways gradients are taken: the adjoint walk back (large states) and autograd
    keeping each state (small ones), whatever the size of the test's circuit."""
    monkeypatch.setattr(statevector, "KEEP_STATES_BELOW", 0 if request.param == "adjoint" else 2**62)
    return request.param


def bound_state(circuit, inputs, weights, x, w) -> np.ndarray:
    values = dict(zip(inputs, x)) | dict(zip(weights, w))
    return Statevector(circuit.assign_parameters({p: v for p, v in values.items() if p in circuit.parameters})).data


@pytest.mark.parametrize("feature_map,ansatz,entanglement,observables,n", COMBINATIONS)
def test_torch_statevector_matches_qiskit(feature_map, ansatz, entanglement, observables, n):
    rng = np.random.default_rng(n)
    circuit, inputs, weights = build_circuit(n, feature_map, ansatz, reps=2, entanglement=entanglement, reupload=2)
    ops = observables_for(observables, n, rng)
    x = rng.uniform(-math.pi, math.pi, (2, len(inputs)))
    w = rng.uniform(-math.pi, math.pi, len(weights))
    states = TorchStatevector(circuit, inputs, weights)(torch.tensor(x), torch.tensor(w))
    values = PauliExpectations(ops)(states)
    for b in range(2):
        expected = bound_state(circuit, inputs, weights, x[b], w)
        np.testing.assert_allclose(states[b].numpy(), expected, atol=1e-10, rtol=0)
        expected_values = [Statevector(expected).expectation_value(op).real for op in ops]
        np.testing.assert_allclose(values[b].numpy(), expected_values, atol=1e-10, rtol=0)


ONE_QUBIT = ["h", "sx", "x", "y", "z", "s", "sdg", "t", "tdg"]
ROTATIONS = ["rx", "ry", "rz", "p"]
TWO_QUBIT = ["cx", "cz", "swap"]
TWO_QUBIT_ROTATIONS = ["cp", "rzz"]


def random_circuit(n: int, depth: int, rng) -> tuple[QuantumCircuit, list, list]:
    """Every gate qtrain's simulator supports, at random: angles that read an input (as
    feature maps do), each weight in one gate (so the parameter-shift rule applies)."""
    inputs, weights = ParameterVector("x", n), ParameterVector("w", depth)
    circuit, used = QuantumCircuit(n), 0
    for _ in range(depth):
        kind = rng.choice(["fixed", "rotation", "two", "two_rotation", "u"] if n > 1 else ["fixed", "rotation", "u"])
        qubits = [int(q) for q in rng.choice(n, 2 if kind.startswith("two") else 1, replace=False)]
        reads_input = rng.random() < 0.4
        angle = 2 * inputs[int(rng.integers(n))] + 0.3 if reads_input else weights[used]
        used += not reads_input
        if kind == "fixed":
            getattr(circuit, str(rng.choice(ONE_QUBIT)))(*qubits)
        elif kind == "rotation":
            getattr(circuit, str(rng.choice(ROTATIONS)))(angle, *qubits)
        elif kind == "two":
            getattr(circuit, str(rng.choice(TWO_QUBIT)))(*qubits)
        elif kind == "two_rotation":
            getattr(circuit, str(rng.choice(TWO_QUBIT_ROTATIONS)))(angle, *qubits)
        else:
            circuit.u(*rng.uniform(-math.pi, math.pi, 3), *qubits)
    return circuit, list(inputs), [w for w in weights if w in set(circuit.parameters)]


@pytest.mark.parametrize("seed", range(12))
def test_random_circuits_of_every_supported_gate_match_qiskit_and_parameter_shift(seed, backward):
    rng = np.random.default_rng(seed)
    n = 1 + seed % 6
    circuit, inputs, weights = random_circuit(n, depth=30, rng=rng)
    x, w = rng.uniform(-math.pi, math.pi, (1, n)), rng.uniform(-math.pi, math.pi, len(weights))
    op = build_observables(["".join(rng.choice(list("IXYZ"), n))], n)[0]
    wt = torch.tensor(w, requires_grad=True)
    state = TorchStatevector(circuit, inputs, weights)(torch.tensor(x), wt)
    np.testing.assert_allclose(state[0].detach().numpy(), bound_state(circuit, inputs, weights, x[0], w), atol=1e-10)
    PauliExpectations([op])(state).sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), parameter_shift(circuit, inputs, weights, x[0], w, op), atol=1e-10)


def parameter_shift(circuit, inputs, weights, x, w, op) -> np.ndarray:
    """d<op>/dw by the two-term shift rule (every weight enters one RY/RZ once)."""

    def value(wv):
        return Statevector(bound_state(circuit, inputs, weights, x, wv)).expectation_value(op).real

    shifts = np.eye(len(w)) * math.pi / 2
    return np.array([(value(w + s) - value(w - s)) / 2 for s in shifts]).reshape(len(w))


@pytest.mark.parametrize("feature_map,ansatz", list(itertools.product(FEATURE_MAPS, ANSATZE)))
def test_weight_gradients_match_parameter_shift(feature_map, ansatz, backward):
    rng = np.random.default_rng(1)
    circuit, inputs, weights = build_circuit(3, feature_map, ansatz, reps=1, entanglement="circular")
    op = build_observables(["XZY"], 3)[0]
    x, w = rng.uniform(-1, 1, len(inputs)), rng.uniform(-math.pi, math.pi, len(weights))
    wt = torch.tensor(w, requires_grad=True)
    value = PauliExpectations([op])(TorchStatevector(circuit, inputs, weights)(torch.tensor(x)[None], wt))
    value.sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), parameter_shift(circuit, inputs, weights, x, w, op), atol=1e-10)


@pytest.mark.parametrize("feature_map", list(FEATURE_MAPS))
def test_input_gradients_match_finite_differences(feature_map, backward):
    circuit, inputs, weights = build_circuit(3, feature_map, "efficient_su2", reps=1, entanglement="full")
    simulator, expectations = TorchStatevector(circuit, inputs, weights), PauliExpectations(build_observables("z", 3))
    x = torch.rand(2, len(inputs), dtype=torch.float64, requires_grad=True)
    w = torch.rand(len(weights), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: expectations(simulator(x, w)), (x, w))


def test_a_wide_circuit_keeps_a_few_states_for_backward_and_its_gradients_are_exact(monkeypatch):
    monkeypatch.setattr(statevector, "KEEP_STATES_BELOW", 0)  # 4 x 2**12 amplitudes would be kept otherwise
    # 12 qubits: blocks in the middle of the state; reupload: input rotations after the first layer.
    circuit, inputs, weights = build_circuit(12, "angle_ry", "efficient_su2", reps=2, entanglement="full", reupload=2)
    simulator, expectations = TorchStatevector(circuit, inputs, weights), PauliExpectations(build_observables("zz", 12))
    x = torch.rand(4, 12, dtype=torch.float64, requires_grad=True)
    w = torch.rand(len(weights), dtype=torch.float64, requires_grad=True)
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        states = simulator(x, w)
    # Autograd would keep a state per step; the adjoint backward keeps the final one.
    assert len(simulator.steps) > 20 and sum(size >= states.numel() for size in sizes) == 1
    assert torch.autograd.gradcheck(lambda x, w: expectations(simulator(x, w)), (x, w))


def test_the_public_layer_simulates_in_the_modules_dtype():
    layer = QuantumLayer(n_qubits=4, feature_map="zz", reps=2, observables="zz")
    x = torch.rand(3, 4, dtype=torch.float64)
    w = layer.weights.detach().double().numpy()
    expected = [
        [
            Statevector(bound_state(layer.circuit, layer.input_params, layer.weight_params, row, w))
            .expectation_value(op)
            .real
            for op in layer.observables
        ]
        for row in x.numpy()
    ]
    assert (layer(x) - torch.tensor(expected)).abs().max() > 1e-9  # float32: complex64 states
    layer.double()
    assert layer.weights.dtype == torch.float64
    torch.testing.assert_close(layer(x), torch.tensor(expected, dtype=torch.float64), atol=1e-10, rtol=0)


def layers(backend: str, **options) -> tuple[QuantumLayer, QuantumLayer]:
    """An exact float64 torch layer and a `backend` layer (with `options`) of the same circuit."""
    torch.manual_seed(0)
    spec = {"n_qubits": 3, "feature_map": "zz", "reps": 1, "observables": "zz"}
    reference = QuantumLayer(backend="torch", dtype="float64", **spec)
    other = QuantumLayer(backend=backend, **spec, **options)
    other.load_state_dict(reference.state_dict())  # the same weights: the state dict is backend-free
    return reference, other


def test_torch_and_qiskit_backends_agree_with_gradients():
    reference, qiskit = layers("qiskit")
    x = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    values = reference(x)
    values.sum().backward()
    input_grad, weight_grad = x.grad.clone(), reference.weights.grad.clone()
    x.grad = None
    again = qiskit(x)
    again.sum().backward()
    torch.testing.assert_close(again, values, atol=1e-6, rtol=0)
    torch.testing.assert_close(x.grad, input_grad, atol=1e-4, rtol=0)  # parameter-shift in qiskit
    torch.testing.assert_close(qiskit.weights.grad, weight_grad, atol=1e-4, rtol=0)


def test_aer_with_many_shots_is_within_the_sampling_bound():
    shots = 20_000
    reference, aer = layers("aer", shots=shots, seed=3)
    x = torch.rand(4, 3, dtype=torch.float64)
    error = (aer(x) - reference(x)).abs()
    # Aer models shot noise as N(0, 1/sqrt(shots)) per value: 5 sigma bounds every one.
    assert error.max().item() < 5 / math.sqrt(shots)
    assert error.max().item() > 0  # and it is noise, not the exact value


def test_aer_depolarizing_noise_shrinks_expectations():
    reference, noisy = layers("aer", noise={"depolarizing": [0.05, 0.1]}, seed=0)
    x = torch.rand(4, 3, dtype=torch.float64)
    assert noisy(x).abs().sum() < reference(x).abs().sum()


def test_torch_shots_sample_around_the_exact_value():
    exact = QuantumLayer(n_qubits=3, dtype="float64")
    sampled = QuantumLayer(n_qubits=3, dtype="float64", shots=400, seed=0)
    sampled.load_state_dict(exact.state_dict())
    x = torch.rand(200, 3, dtype=torch.float64)
    error = sampled(x) - exact(x)
    assert 0.5 / math.sqrt(400) < error.std().item() < 1.0 / math.sqrt(400) + 0.01  # std <= 1/sqrt(shots)
    assert abs(error.mean().item()) < 0.01


def test_layer_follows_the_contract():
    layer = QuantumLayer(n_qubits=4, feature_map="zz", ansatz="real_amplitudes", reps=2, observables="z")
    assert [p.name for p in layer.circuit.parameters if p in set(layer.input_params)] == [f"x[{i}]" for i in range(4)]
    assert layer.weights.shape == (len(layer.weight_params),) and layer.weights.dtype == torch.float32
    assert [op.paulis[0].to_label() for op in layer.observables] == ["IIIZ", "IIZI", "IZII", "ZIII"]
    x = torch.rand(5, 4, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.shape == (5, 4) and x.grad.abs().sum() > 0 and layer.weights.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.float32  # the simulation stays in float32 under autocast


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"feature_map": "pauli"}, "feature_map=pauli: use one of zz, z, angle_ry, angle_rx"),
        ({"ansatz": "qaoa"}, "ansatz=qaoa: use one of real_amplitudes, efficient_su2"),
        ({"entanglement": "star"}, "entanglement=star: use one of linear, circular, full"),
        ({"observables": "x"}, "observables=x: use z, zz or a list of Pauli strings"),
        ({"observables": ["ZZ"]}, "observables=ZZ: a Pauli string is 4 characters of I, X, Y, Z"),
        ({"backend": "gpu"}, "backend=gpu: use one of torch, qiskit, aer"),
        ({"n_qubits": 40}, "n_qubits=40: a 40-qubit statevector needs about 48.0 TiB per sample"),
        ({"shots": 0}, "shots=0: use null (exact) or a positive integer"),
        ({"shots": 100, "backend": "qiskit"}, "shots=100: the qiskit backend is exact"),
        (
            {"noise": {"depolarizing": [0.1, 0.1]}, "backend": "qiskit"},
            "noise.depolarizing=[0.1, 0.1]: the qiskit backend is ideal; noise needs backend=torch or aer",
        ),
    ],
)
def test_bad_circuit_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError) as error:  # an ArgumentError, named in config keys by the app
        QuantumLayer(**{"n_qubits": 4, **kwargs})
    assert str(error.value).startswith(message)


def test_a_batch_that_cannot_fit_is_refused_before_it_is_simulated(monkeypatch):
    layer = QuantumLayer(n_qubits=16, feature_map="angle_ry", reps=1)
    free = 100 * 2**20
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=free))
    assert layer(torch.rand(8, 16)).shape == (8, 16)  # 8 x 2**16 amplitudes x 8 B x 6 states = 24 MiB
    with pytest.raises(ArgumentError) as error:
        layer(torch.rand(64, 16))  # 192 MiB
    assert str(error.value) == (
        "n_qubits=16: a 16-qubit statevector needs about 192.0 MiB for a batch of 64, "
        "100.0 MiB is free; use fewer qubits or a smaller batch"
    )


def test_a_small_circuit_runs_on_one_thread_and_leaves_torchs_setting(monkeypatch):
    seen = []
    for n_qubits, batch in ((4, 8), (12, 16)):  # 128 and 65,536 amplitudes
        layer = QuantumLayer(n_qubits=n_qubits, feature_map="angle_ry", reps=1)
        simulate = layer.runner.simulator.forward
        monkeypatch.setattr(
            layer.runner.simulator, "forward", lambda x, w, f=simulate: seen.append(torch.get_num_threads()) or f(x, w)
        )
        previous = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            layer(torch.rand(batch, n_qubits)).sum().backward()
            assert torch.get_num_threads() == 2
        finally:
            torch.set_num_threads(previous)
    assert seen == [1, 2]


def test_a_small_circuits_backward_runs_on_one_thread_and_the_encoders_on_torchs_setting(monkeypatch):
    # Autograd runs the backward after the forward has left threads_for: on a busy machine
    # the 4-qubit step took 4.6-5.8 ms with the circuit's backward on two threads, 1.9-2.4 ms
    # on one; the encoder's backward beneath it keeps torch's threads.
    layer, seen = QuantumLayer(n_qubits=4, feature_map="angle_ry", reps=1), {"circuit": [], "encoder": []}
    simulate = layer.runner.simulator.forward

    def recording(x, w):
        state = simulate(x, w)
        state.register_hook(lambda grad: seen["circuit"].append(torch.get_num_threads()))
        return state

    monkeypatch.setattr(layer.runner.simulator, "forward", recording)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        features = torch.rand(8, 4, requires_grad=True) * 1.0  # what an encoder would hand the layer
        features.register_hook(lambda grad: seen["encoder"].append(torch.get_num_threads()))
        layer(features).sum().backward()
        assert seen == {"circuit": [1], "encoder": [2]} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_input_width_must_match_the_circuit():
    layer = QuantumLayer(n_qubits=4)
    with pytest.raises(ValueError, match="the circuit takes 4 inputs per sample but got 6"):
        layer(torch.rand(2, 6))


@pytest.mark.parametrize("feature_map", ["zz", "angle_ry"])
def test_the_layer_exports_and_keeps_working_after_the_trace(feature_map):
    layer = QuantumLayer(n_qubits=3, feature_map=feature_map, reps=1, observables="zz").eval()
    x = torch.rand(4, 3)
    before = layer(x)
    program = torch.export.export(layer, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},)).module()
    wider = torch.rand(7, 3)
    torch.testing.assert_close(program(wider), layer(wider))  # the batch size is free
    after = layer(x)  # nothing the trace made (fake tensors) was kept by the layer
    assert type(after) is torch.Tensor and torch.equal(after, before)
