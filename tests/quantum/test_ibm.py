"""backend=ibm, offline: qiskit-ibm-runtime's local testing mode on a fake device stands in
for IBM Quantum. A layer's values are the device's (shot noise within its bound), each
forward is one recorded job, training is refused, and a checkpoint is evaluated on it
from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qtrain
from qtrain.errors import ArgumentError, ConfigError
from qtrain.models.build import check_circuit
from qtrain.quantum import QuantumLayer

FIXTURE = Path(__file__).parents[1] / "predict" / "fixtures" / "v0.1.0" / "last.pt"  # 3 qubits, angle_ry


def check_model_circuit(cfg) -> None:
    """The app's check of a composed config's circuit, as `python -m qtrain` runs it first."""
    check_circuit(cfg.model, cfg.train, cfg.trainer.limit_eval_batches)


def test_local_testing_mode_gives_the_devices_values_one_job_a_forward():
    spec = {"n_qubits": 2, "feature_map": "angle_ry", "reps": 1, "observables": ["ZX", "IZ"], "dtype": "float64"}
    shots = 20_000
    layer = QuantumLayer(backend="ibm", noise={"device": "FakeManilaV2"}, shots=shots, seed=0, **spec)
    x = torch.rand(4, 2, dtype=torch.float64)
    with torch.no_grad():
        values = layer(x)
    simulated = QuantumLayer(noise={"device": "FakeManilaV2"}, seed=0, **spec)  # the same noise, exact
    simulated.load_state_dict(layer.state_dict())
    assert (values - simulated(x)).abs().max() < 5 / shots**0.5  # five standard deviations of a +-1 mean
    assert layer.noise_record["method"] == "local testing mode" and len(layer.noise_record["jobs"]) == 1
    with torch.no_grad():
        layer(x)
    assert len(set(layer.noise_record["jobs"])) == 2


def test_training_on_a_device_is_refused():
    layer = QuantumLayer(n_qubits=2, backend="ibm", noise={"device": "FakeManilaV2"})
    with pytest.raises(ArgumentError, match="^backend=ibm: evaluates a trained model"):
        layer(torch.rand(2, 2))
    with pytest.raises(ConfigError, match="^model.quantum.backend=ibm: evaluates a trained model on a device"):
        check_model_circuit(
            qtrain.compose(
                ["model=cnn_quantum", "model.quantum.backend=ibm", "model.quantum.noise.device=FakeNairobiV2"]
            )
        )


def test_a_real_device_needs_a_token_and_a_cap(monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    evaluation = ["model=cnn_quantum", "model.quantum.backend=ibm", "train=false", "ckpt_path=x.pt"]
    with pytest.raises(ConfigError, match="^model.quantum.noise.device=ibm_torino: backend=ibm needs QISKIT_IBM_TOKEN"):
        check_model_circuit(qtrain.compose([*evaluation, "model.quantum.noise.device=ibm_torino"], evaluate=False))
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "not-a-real-token")
    with pytest.raises(ConfigError, match="^trainer.limit_eval_batches=None: caps the batches sent to the device"):
        check_model_circuit(qtrain.compose([*evaluation, "model.quantum.noise.device=ibm_torino"], evaluate=False))
    with pytest.raises(ConfigError, match="^model.quantum.noise.device=null: backend=ibm runs on a device"):
        check_model_circuit(qtrain.compose(evaluation, evaluate=False))


@pytest.mark.slow  # a command-line evaluation
def test_a_checkpoint_is_evaluated_on_a_fake_device_in_local_testing_mode(tmp_path, run_cli):
    run_dir = tmp_path / "on_device"
    result = run_cli(
        "train=false",
        f"ckpt_path={FIXTURE}",
        "model.quantum.backend=ibm",
        "model.quantum.noise.device=FakeManilaV2",
        "trainer.limit_eval_batches=2",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run_dir / "model_info.json").read_text())["quantum_noise"]["head.quantum"]
    assert record["backend"] == "ibm" and record["device"] == "FakeManilaV2"
    assert record["method"] == "local testing mode" and len(record["jobs"]) >= 1
    assert 0 < json.loads((run_dir / "metrics.json").read_text())["test/acc"] <= 1
