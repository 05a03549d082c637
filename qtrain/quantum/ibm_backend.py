"""The `ibm` backend: the layer's circuit on an IBM Quantum device through
qiskit-ibm-runtime's EstimatorV2, to evaluate a trained model (training would send two
jobs per parameter for every step). `noise.device` names the device: a real one (the
account from QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE, never logged) or one of
qiskit-ibm-runtime's fake devices, which runs in its local testing mode (qiskit-aer with
the device's noise model; like Aer's estimator it computes expectation values without
measuring, so the readout errors a device adds are left out there).

Each forward is one job: the batch's parameter values in one PUB. Its job id is
recorded (`record["jobs"]`, the run's model_info.json). Mitigation is off
(resilience_level 0): the values are the device's, as qtrain's noisy simulators give them.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from qiskit.transpiler import generate_preset_pass_manager

from qtrain.errors import ArgumentError
from qtrain.quantum.noise import NoisyCircuit, device_names

TOKEN, INSTANCE = "QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE"


def check_device(n_qubits: int, shots: int | None, noise: dict | None) -> None:
    """Refuse, before anything runs, a device that is not named or cannot be reached."""
    if noise is None or "device" not in noise:
        raise ArgumentError(
            "noise.device", "null", "backend=ibm runs on a device: name it, e.g. ibm_torino or FakeNairobiV2 (local)"
        )
    name = noise["device"]
    if name in device_names():
        from qtrain.quantum.noise import check_width

        check_width(n_qubits, name)
    elif not os.environ.get(TOKEN):
        raise ArgumentError(
            "noise.device",
            name,
            f"backend=ibm needs {TOKEN} (and {INSTANCE}) in the environment to reach IBM Quantum; "
            "a fake device (e.g. FakeNairobiV2) runs in local testing mode",
        )


def device(name: str):
    if name in device_names():
        import qiskit_ibm_runtime.fake_provider as provider

        return getattr(provider, name)()
    from qiskit_ibm_runtime import QiskitRuntimeService

    service = QiskitRuntimeService(
        channel="ibm_quantum_platform", token=os.environ[TOKEN], instance=os.environ.get(INSTANCE)
    )
    return service.backend(name)


class IbmBackend:
    def __init__(self, layer, initial: torch.Tensor, shots: int | None, noise: NoisyCircuit | None, seed: int | None):
        from qiskit_ibm_runtime import EstimatorV2

        name = layer.noise["device"]
        self.weights = torch.nn.Parameter(initial)
        self.device = device(name)
        self.method = "local testing mode" if name in device_names() else "hardware"
        passes = generate_preset_pass_manager(optimization_level=1, backend=self.device, seed_transpiler=seed or 0)
        self.circuit = passes.run(layer.circuit)
        self.observables = [[op.apply_layout(self.circuit.layout)] for op in layer.observables]
        given = list(layer.input_params) + list(layer.weight_params)
        self.order = [given.index(p) for p in self.circuit.parameters]
        # EstimatorV2, deprecated in qiskit-ibm-runtime 0.50 for executor_estimator.Estimator,
        # is still the one with a local testing mode on fake devices; move once the new one has it.
        self.estimator = EstimatorV2(mode=self.device)
        if self.method == "hardware":
            self.estimator.options.resilience_level = 0
        elif seed is not None:
            self.estimator.options.simulator.seed_simulator = seed
        self.precision = 1 / math.sqrt(shots) if shots else None  # None: the service's default
        properties = self.device.properties() if hasattr(self.device, "properties") else None
        calibrated = str(properties.last_update_date) if properties is not None else None
        self.record = {"device": name, "calibrated": calibrated, "layout": self.circuit.layout.final_index_layout()}
        self.record["jobs"] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise ArgumentError(
                "backend",
                "ibm",
                "evaluates a trained model (train=false ckpt_path=...): training on a device would send two "
                "jobs per parameter for every step",
            )
        weights = self.weights.detach().double().cpu().numpy()
        values = np.concatenate([x.detach().double().cpu().numpy(), np.tile(weights, (x.shape[0], 1))], axis=1)
        job = self.estimator.run([(self.circuit, self.observables, values[:, self.order])], precision=self.precision)
        self.record["jobs"].append(job.job_id())
        evs = np.asarray(job.result()[0].data.evs)  # (outputs, batch)
        return torch.as_tensor(evs.T.copy(), dtype=x.dtype, device=x.device)
