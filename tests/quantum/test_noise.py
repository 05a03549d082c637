"""Noise on the torch backend (qtrain.quantum.noise, qtrain.quantum.noisy_simulator)
against qiskit-aer's density-matrix method run directly: the layer's simulated circuit
under `NoiseModel.from_backend`, each Pauli string measured in its basis, the device's
readout confusion applied to the measured bits."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from qiskit import transpile
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_ibm_runtime import fake_provider

import qtrain
from qtrain.errors import ArgumentError, ConfigError
from qtrain.models.build import check_circuit
from qtrain.quantum import QuantumLayer, torch_backend

ONE_QUBIT_GATES = ["h", "p", "rx", "ry", "rz", "s", "sdg", "sx", "x", "y", "z"]


def check_model_circuit(cfg) -> None:
    """The app's check of a composed config's circuit, as `python -m qtrain` runs it first."""
    check_circuit(cfg.model, cfg.train, cfg.trainer.limit_eval_batches)


@functools.cache
def device_model(name: str) -> tuple[NoiseModel, dict[int, np.ndarray]]:
    """The device's gate noise as qiskit-aer's from_backend builds it, and its readout
    confusion matrices P(measured | prepared) from the calibration's P(1|0) and P(0|1)."""
    device = getattr(fake_provider, name)()
    calibration = device.properties()
    readout = {}
    for qubit in range(device.num_qubits):
        flip0 = calibration.qubit_property(qubit, "prob_meas1_prep0")[0]
        flip1 = calibration.qubit_property(qubit, "prob_meas0_prep1")[0]
        readout[qubit] = np.array([[1 - flip0, flip0], [flip1, 1 - flip1]])
    return NoiseModel.from_backend(device, readout_error=False), readout


def generic_model(noise: dict, n_qubits: int) -> tuple[NoiseModel, dict[int, np.ndarray]]:
    model = NoiseModel()
    p1, p2 = noise.get("depolarizing", (0, 0))
    if p1:
        model.add_all_qubit_quantum_error(depolarizing_error(p1, 1), ONE_QUBIT_GATES)
    if p2:
        model.add_all_qubit_quantum_error(depolarizing_error(p2, 2), ["cx", "cz", "swap"])
    flips = noise.get("readout", 0)
    flip0, flip1 = (flips, flips) if np.isscalar(flips) else flips
    readout = {q: np.array([[1 - flip0, flip0], [flip1, 1 - flip1]]) for q in range(n_qubits)} if flips else {}
    return model, readout


def aer_values(layer: QuantumLayer, model: NoiseModel, readout: dict, x: torch.Tensor, device: bool) -> np.ndarray:
    """(batch, outputs): each output's Pauli strings measured as on a device, by Aer's
    density-matrix method."""
    circuit = layer.simulated_circuit
    simulator = AerSimulator(method="density_matrix", noise_model=model)
    basis = sorted({item.operation.name for item in circuit.data} | {"rz", "sx"})
    weights = layer.weights.detach().double().numpy()
    rows = []
    for sample in x.double().numpy():
        bound = circuit.assign_parameters(
            dict(zip(layer.input_params, sample)) | dict(zip(layer.weight_params, weights))
        )
        row = []
        for observable in layer.simulated_observables:
            value = 0.0
            for pauli, coeff in zip(observable.paulis, observable.coeffs):
                support = [int(q) for q in np.flatnonzero(pauli.x | pauli.z)]
                measured = bound.copy()
                for q in support:
                    if pauli.x[q] and pauli.z[q]:
                        measured.sdg(q)
                    if pauli.x[q]:
                        measured.h(q)
                if device:  # the basis change in the device's gates, as it would run
                    measured = transpile(measured, basis_gates=basis, optimization_level=0)
                measured.save_density_matrix(qubits=support)
                rho = np.asarray(simulator.run(measured).result().data()["density_matrix"])
                probabilities = np.real(np.diag(rho)).reshape([2] * len(support))  # axis 0: the last support qubit
                for axis, q in enumerate(reversed(support)):
                    signs = readout.get(q, np.eye(2)) @ np.array([1.0, -1.0])  # E[(-1)^measured | prepared]
                    probabilities = np.moveaxis(
                        np.tensordot(probabilities, signs, axes=([axis], [0]))[..., None], -1, axis
                    )
                value += float(np.real(coeff)) * float(probabilities.sum())
            row.append(value)
        rows.append(row)
    return np.array(rows)


def layer_under(noise: dict, **spec) -> QuantumLayer:
    torch.manual_seed(0)
    return QuantumLayer(dtype="float64", noise=noise, seed=0, **spec)


# Every feature map, ansatz and observable kind, on a 5- and a 7-qubit device and the generic models.
CIRCUITS = [
    {"n_qubits": 3, "feature_map": "zz", "ansatz": "real_amplitudes", "observables": "z"},
    {"n_qubits": 3, "feature_map": "angle_ry", "ansatz": "efficient_su2", "observables": "zz"},
    {"n_qubits": 2, "feature_map": "z", "ansatz": "real_amplitudes", "observables": ["XY", "ZX", "YI"], "reps": 1},
    {"n_qubits": 3, "feature_map": "angle_rx", "ansatz": "efficient_su2", "observables": ["XZY", "ZZZ"], "reps": 1},
]
NOISES = [
    {"device": "FakeManilaV2"},
    {"device": "FakeNairobiV2"},
    {"depolarizing": [0.02, 0.06]},
    {"readout": [0.03, 0.08]},
    {"depolarizing": [0.01, 0.03], "readout": 0.05},
]


def check_against_aer(noise: dict, spec: dict) -> QuantumLayer:
    layer = layer_under(noise, **spec)
    x = torch.rand(2, len(layer.input_params), dtype=torch.float64)
    if "device" in noise:
        model, readout = device_model(noise["device"])
    else:
        model, readout = generic_model(noise, spec["n_qubits"])
    expected = aer_values(layer, model, readout, x, "device" in noise)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-6, rtol=0)
    return layer


# make test: each noise on one circuit, every circuit at least once; the slow tier: the rest.
PAIRS = [(noise, CIRCUITS[k % len(CIRCUITS)]) for k, noise in enumerate(NOISES)]
REST = [(noise, spec) for noise in NOISES for spec in CIRCUITS if (noise, spec) not in PAIRS]


def case_id(case) -> str:
    noise, spec = case
    return f"{'-'.join(map(str, noise))}-{spec['feature_map']}-{spec['ansatz']}"


@pytest.mark.parametrize("case", PAIRS, ids=case_id)
def test_the_noisy_density_matrix_equals_qiskit_aer(case):
    check_against_aer(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", REST, ids=case_id)
def test_every_circuit_under_every_noise_equals_qiskit_aer(case):
    check_against_aer(*case)


@pytest.mark.slow  # FakeTorino's noise model takes about 7 s to build, each way: two circuits cover both ansatze
@pytest.mark.parametrize("spec", CIRCUITS[::3], ids=lambda s: f"{s['feature_map']}-{s['ansatz']}")
def test_a_133_qubit_device_simulates_only_the_circuits_qubits(spec):
    layer = check_against_aer({"device": "FakeTorino"}, spec)
    assert layer.simulated_circuit.num_qubits == 133 and layer.runner.n_qubits <= 5


@pytest.mark.slow
@pytest.mark.parametrize("noise", [{"device": "FakeNairobiV2"}, {"depolarizing": [0.02, 0.05], "readout": 0.04}])
def test_wider_circuits_equal_qiskit_aer(noise):
    spec = {"n_qubits": 5, "feature_map": "zz", "ansatz": "efficient_su2", "observables": ["XZIYZ", "ZZZZZ", "IIXIY"]}
    check_against_aer(noise, spec)


@pytest.mark.parametrize("noise", [{"device": "FakeManilaV2"}, {"depolarizing": [0.02, 0.05], "readout": 0.04}])
def test_noisy_gradients_match_finite_differences(noise):
    layer = layer_under(noise, n_qubits=3, feature_map="zz", ansatz="efficient_su2", reps=1, observables="zz")
    simulator = layer.runner.simulator
    x = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    w = layer.weights.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(simulator, (x, w), atol=1e-7)


@pytest.mark.parametrize("noise", [{"device": "FakeManilaV2"}, {"depolarizing": [0.02, 0.05], "readout": [0.02, 0.07]}])
def test_the_aer_backend_gives_the_torch_values_readout_included(noise):
    spec = {"n_qubits": 2, "feature_map": "angle_ry", "reps": 1, "observables": ["XZ", "ZY"]}
    torch_layer = layer_under(noise, **spec)
    aer_layer = QuantumLayer(backend="aer", dtype="float64", noise=noise, seed=0, **spec)
    aer_layer.load_state_dict(torch_layer.state_dict())
    x = torch.rand(3, 2, dtype=torch.float64)
    ideal = QuantumLayer(dtype="float64", **spec)
    ideal.load_state_dict(torch_layer.state_dict())
    torch.testing.assert_close(aer_layer(x), torch_layer(x), atol=1e-6, rtol=0)
    assert (torch_layer(x) - ideal(x)).abs().max() > 1e-3  # the noise is there


def test_trajectories_are_unbiased_with_their_standard_error():
    noise = {"device": "FakeManilaV2", "method": "trajectories", "trajectories": 3000}
    spec = {"n_qubits": 3, "feature_map": "zz", "ansatz": "real_amplitudes", "observables": ["XZY", "ZZI"], "reps": 1}
    sampled, exact = layer_under(noise, **spec), layer_under({"device": "FakeManilaV2"}, **spec)
    assert sampled.noise_record["method"] == "trajectories" and exact.noise_record["method"] == "density_matrix"
    x = torch.rand(4, 3, dtype=torch.float64)
    values, error = sampled(x), sampled.runner.standard_error
    assert error.shape == values.shape and (error > 0).all() and (error < 0.05).all()
    z = (values - exact(x)) / error
    assert z.abs().max() < 4.5, z  # 8 values: a 4.5-sigma miss has odds below 1e-4


def test_trajectory_gradients_are_unbiased():
    """The mean of independent trajectory gradients approaches the exact gradient."""
    noise = {"depolarizing": [0.03, 0.08], "readout": 0.05, "method": "trajectories", "trajectories": 400}
    spec = {"n_qubits": 2, "feature_map": "zz", "ansatz": "efficient_su2", "observables": "z", "reps": 1}
    sampled, exact = layer_under(noise, **spec), layer_under({k: noise[k] for k in ("depolarizing", "readout")}, **spec)
    x = torch.rand(3, 2, dtype=torch.float64)
    exact(x).sum().backward()
    gradients = []
    for _ in range(12):
        sampled.weights.grad = None
        sampled(x).sum().backward()
        gradients.append(sampled.weights.grad.clone())
    gradients = torch.stack(gradients)
    z = (gradients.mean(0) - exact.weights.grad) / (gradients.std(0) / len(gradients) ** 0.5 + 1e-9)
    assert z.abs().max() < 5, z


def test_auto_picks_trajectories_above_the_density_matrix_limit(monkeypatch):
    monkeypatch.setattr(torch_backend, "DENSITY_MATRIX_UP_TO", 2)
    assert layer_under({"depolarizing": [0.01, 0.02]}, n_qubits=3).noise_record["method"] == "trajectories"
    forced = layer_under({"depolarizing": [0.01, 0.02], "method": "density_matrix"}, n_qubits=3)
    assert forced.noise_record["method"] == "density_matrix"


def test_the_simulated_circuit_is_the_device_circuit_over_the_layers_parameters():
    layer = layer_under({"device": "FakeNairobiV2"}, n_qubits=4, feature_map="angle_ry")
    circuit = layer.simulated_circuit
    assert circuit.num_qubits == 7 and set(circuit.parameters) == set(layer.circuit.parameters)
    assert {item.operation.name for item in circuit.data} <= {"rz", "sx", "x", "cx"}
    assert [op.num_qubits for op in layer.simulated_observables] == [7] * 4
    record = layer.noise_record
    assert record["device"] == "FakeNairobiV2" and record["calibrated"].startswith("2024-")
    assert record["layout"] == circuit.layout.final_index_layout() and record["method"] == "density_matrix"
    ideal = QuantumLayer(n_qubits=4)
    assert ideal.simulated_circuit is ideal.circuit and ideal.noise_record is None


def test_shots_sample_around_the_noisy_values():
    spec = {"n_qubits": 2, "feature_map": "angle_ry", "reps": 1}
    exact = layer_under({"readout": 0.1}, **spec)
    sampled = QuantumLayer(dtype="float64", noise={"readout": 0.1}, shots=4000, seed=1, **spec)
    sampled.load_state_dict(exact.state_dict())
    x = torch.rand(16, 2, dtype=torch.float64)
    bound = 5 / 4000**0.5  # five standard deviations of a +-1 observable's mean over 4000 shots
    assert 0 < (sampled(x) - exact(x)).abs().max() < bound


REFUSALS = {  # overrides: the start of the one line
    "unknown device": (
        ["model.quantum.noise.device=FakeNope"],
        "model.quantum.noise.device=FakeNope: use a fake device",
    ),
    "too wide": (
        ["model.quantum.noise.device=FakeManilaV2", "model.quantum.n_qubits=6"],
        "model.quantum.n_qubits=6: FakeManilaV2 has 5 qubits; use at most 5 or a wider device",
    ),
    "not simulated there": (
        ["model.quantum.noise.device=FakeManilaV2", "model.quantum.noise.readout=0.1"],
        "model.quantum.noise.readout=0.1: a device brings its own noise",
    ),
    "qiskit backend": (
        ["model.quantum.backend=qiskit", "model.quantum.noise.depolarizing=[0.1,0.2]"],
        "model.quantum.noise.depolarizing=[0.1, 0.2]: the qiskit backend is ideal; noise needs backend=torch or aer",
    ),
    "probability": (
        ["model.quantum.noise.depolarizing=[0.1,1.5]"],
        "model.quantum.noise.depolarizing=[0.1, 1.5]: use [p1, p2]: after each one- and two-qubit gate, each a",
    ),
    "readout": (["model.quantum.noise.readout=-0.1"], "model.quantum.noise.readout=-0.1: use p or [p(1|0), p(0|1)]"),
    "method": (
        ["model.quantum.noise.method=exact"],
        "model.quantum.noise.method=exact: use one of auto, density_matrix",
    ),
    "no token": (
        ["model.quantum.backend=ibm", "model.quantum.noise.device=ibm_torino"],
        "model.quantum.noise.device=ibm_torino: backend=ibm needs QISKIT_IBM_TOKEN",
    ),
    "training on hardware": (
        ["model.quantum.backend=ibm", "model.quantum.noise.device=FakeNairobiV2"],
        "model.quantum.backend=ibm: evaluates a trained model on a device",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_what_no_backend_can_simulate_is_refused_in_the_models_keys(case, monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    overrides, message = REFUSALS[case]
    with pytest.raises(ConfigError) as error:
        check_model_circuit(qtrain.compose(["model=cnn_quantum", *overrides]))
    assert str(error.value).startswith(message)


@pytest.mark.slow  # a command-line start per case
@pytest.mark.parametrize("case", REFUSALS)
def test_a_noise_refusal_is_one_line_before_any_run_folder(case, tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    overrides, message = REFUSALS[case]
    tracked = ["tracking=mlflow", f"tracking.mlflow.uri=sqlite:///{tmp_path}/mlflow.db"]
    result = run_cli("model=cnn_quantum", *overrides, *tracked, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(message), lines
    assert list(tmp_path.iterdir()) == []


def test_the_layer_refuses_in_its_arguments():
    with pytest.raises(ArgumentError, match=r"^noise.trajectories=1: an integer >= 2"):
        QuantumLayer(n_qubits=2, noise={"readout": 0.1, "trajectories": 1})
    with pytest.raises(ArgumentError, match=r"^noise.colour=red: use one of device, depolarizing"):
        QuantumLayer(n_qubits=2, noise={"colour": "red"})


def test_a_noisy_layer_exports_with_a_free_batch_size():
    layer = layer_under({"device": "FakeManilaV2"}, n_qubits=3, feature_map="angle_ry", reps=1).eval()
    x = torch.rand(4, 3, dtype=torch.float64)
    program = torch.export.export(layer, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},)).module()
    wider = torch.rand(7, 3, dtype=torch.float64)
    torch.testing.assert_close(program(wider), layer(wider))


@pytest.mark.slow  # a command-line run
def test_a_run_under_device_noise_records_the_device_layout_and_method(tmp_path, run_cli):
    run_dir = tmp_path / "run"
    overrides = ["model=cnn_quantum", "model.quantum.noise.device=FakeNairobiV2", "debug=fast"]
    result = run_cli(*overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run_dir / "model_info.json").read_text())["quantum_noise"]["head.quantum"]
    assert record["device"] == "FakeNairobiV2" and record["backend"] == "torch" and record["method"] == "density_matrix"
    assert len(record["layout"]) == 6 and record["calibrated"].startswith("2024-")
    assert "head.quantum simulates noise: device=FakeNairobiV2" in (run_dir / "qtrain.log").read_text()
