"""`QuantumLayer`: a parameterized qiskit circuit as a torch module, on any registered backend."""

from __future__ import annotations

import torch
from torch import nn

from qtrain.errors import ArgumentError
from qtrain.quantum.backends import check
from qtrain.quantum.circuits import build_circuit, build_observables
from qtrain.quantum.noise import noisy_circuit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class QuantumLayer(nn.Module):
    """Maps (batch, n_inputs) to (batch, n_observables) expectation values.

    `.circuit` is the qiskit circuit, `.input_params` / `.weight_params` its parameters
    in order, `.observables` the SparsePauliOps, `.weights` one Parameter ordered like
    `.weight_params`. The state dict holds only `weights`, so a layer trained on one
    backend loads on any other.

    Backends (qtrain.quantum.backends, where a new one is registered): `torch`
    simulates the circuit in torch (autograd, CPU or CUDA, `dtype` float32 or float64):
    an exact batched statevector, or under noise a density matrix or trajectories;
    `qiskit` runs qiskit-machine-learning's EstimatorQNN (exact StatevectorEstimator,
    parameter-shift gradients) through TorchConnector, the reference; `aer` runs
    qiskit-aer's EstimatorV2. `shots` (null = exact) adds sampling noise on the backends
    that take it.

    `noise` (qtrain.quantum.noise): {"device": "FakeNairobiV2"} (a fake IBM device: its
    gates, layout and full noise model), {"depolarizing": [p1, p2]}, {"readout": p},
    with `method` (auto, density_matrix, trajectories) and `trajectories`. The outputs
    are then the noisy channel's expectation values as a device measures them, readout
    errors included; `.simulated_circuit` and `.simulated_observables` are the circuit
    and observables as simulated (transpiled to the device, over the same Parameters),
    and `.noise_record` says what was simulated (device, calibration date, layout, method).
    """

    def __init__(
        self,
        n_qubits: int = 4,
        feature_map: str = "zz",
        ansatz: str = "real_amplitudes",
        reps: int = 2,
        entanglement: str = "linear",
        observables="z",
        backend: str = "torch",
        shots: int | None = None,
        feature_map_reps: int = 1,
        reupload: int = 1,
        dtype: str = "float32",
        noise: dict | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        chosen, noise = check(n_qubits, backend, shots, noise)
        implementation = chosen.load()
        if dtype not in DTYPES:
            raise ArgumentError("dtype", dtype, f"use one of {', '.join(DTYPES)}")
        self.circuit, self.input_params, self.weight_params = build_circuit(
            n_qubits, feature_map, ansatz, reps, entanglement, feature_map_reps, reupload
        )
        self.observables = build_observables(observables, n_qubits)
        self.backend, self.shots, self.dtype = backend, shots, DTYPES[dtype]
        self.noise = noise
        noisy = noisy_circuit(self, noise, seed) if noise and not chosen.hardware else None
        self.simulated_circuit = noisy.circuit if noisy else self.circuit
        self.simulated_observables = noisy.observables if noisy else self.observables
        initial = torch.empty(len(self.weight_params), dtype=self.dtype).uniform_(-1, 1)
        runner = implementation(self, initial, shots=shots, noise=noisy, seed=seed)
        object.__setattr__(self, "runner", runner)  # not a submodule: `weights` is the only state
        self.weights = runner.weights
        self._simulated = noisy.record if noisy else {}

    @property
    def noise_record(self) -> dict | None:
        """What runs: the device, its calibration date, the layout, the method (and a
        hardware backend's jobs); None when ideal."""
        if self.noise is None:
            return None
        return {
            **self._simulated,
            "backend": self.backend,
            "method": self.runner.method,
            **getattr(self.runner, "record", {}),
        }

    @property
    def n_outputs(self) -> int:
        return len(self.observables)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != len(self.input_params):
            raise ArgumentError(
                "n_qubits",
                self.circuit.num_qubits,
                f"the circuit takes {len(self.input_params)} inputs per sample but got {x.shape[-1]}",
            )
        with torch.autocast(x.device.type, enabled=False):  # simulation stays in float32/float64
            return self.runner(x)


def noise_records(model: nn.Module) -> dict[str, dict]:
    """What each noisy QuantumLayer of `model` simulates (`noise_record`), by module name."""
    return {
        name: module.noise_record
        for name, module in model.named_modules()
        if isinstance(module, QuantumLayer) and module.noise_record
    }
