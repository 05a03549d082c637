"""`QuantumLayer`: a parameterized qiskit circuit as a torch module, on one of three backends."""

from __future__ import annotations

import math

import psutil
import torch
from torch import nn

from qtrain.errors import ArgumentError
from qtrain.quantum.circuits import build_circuit, build_observables
from qtrain.quantum.expectations import PauliExpectations
from qtrain.quantum.statevector import TorchStatevector
from qtrain.quantum.steps import BackwardThreads, threads_for

BACKENDS = ("torch", "qiskit", "aer")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class QuantumLayer(nn.Module):
    """Maps (batch, n_inputs) to (batch, n_observables) expectation values.

    `.circuit` is the qiskit circuit, `.input_params` / `.weight_params` its parameters
    in order, `.observables` the SparsePauliOps, `.weights` one Parameter ordered like
    `.weight_params`. The state dict holds only `weights`, so a layer trained on one
    backend loads on any other.

    Backends: `torch` simulates the circuit as an exact batched statevector in torch
    (autograd, CPU or CUDA, `dtype` float32 or float64); `qiskit` runs
    qiskit-machine-learning's EstimatorQNN (exact StatevectorEstimator, parameter-shift
    gradients) through TorchConnector, the reference; `aer` runs qiskit-aer's
    EstimatorV2 with shots and an optional noise model (`noise`: {"depolarizing":
    [p1, p2]} or {"device": "FakeManilaV2"} from qiskit-ibm-runtime's fake provider).
    `shots` (null = exact) adds sampling noise on `torch` and `aer`.
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
        if backend not in BACKENDS:
            raise ArgumentError("backend", backend, f"use one of {', '.join(BACKENDS)}")
        if dtype not in DTYPES:
            raise ArgumentError("dtype", dtype, f"use one of {', '.join(DTYPES)}")
        if shots is not None and (not isinstance(shots, int) or shots < 1):
            raise ArgumentError("shots", shots, "use null (exact) or a positive integer")
        if shots is not None and backend == "qiskit":
            raise ArgumentError("shots", shots, "the qiskit backend is exact; use backend=torch or aer")
        if noise and backend != "aer":
            raise ArgumentError("noise", dict(noise), "noise models need backend=aer")
        if backend == "torch":
            check_memory(n_qubits, DTYPES[dtype])
        self.circuit, self.input_params, self.weight_params = build_circuit(
            n_qubits, feature_map, ansatz, reps, entanglement, feature_map_reps, reupload
        )
        self.observables = build_observables(observables, n_qubits)
        self.backend, self.shots, self.dtype = backend, shots, DTYPES[dtype]
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        initial = torch.empty(len(self.weight_params), dtype=self.dtype).uniform_(-1, 1)
        if backend == "torch":
            self.simulator = TorchStatevector(self.circuit, self.input_params, self.weight_params)
            self.expectations = PauliExpectations(self.observables)
            self.weights = nn.Parameter(initial)
        else:
            from qtrain.quantum.qiskit_backends import torch_connector  # qiskit-machine-learning loads only when used

            connector = torch_connector(self, backend, noise, seed, initial)
            object.__setattr__(self, "connector", connector)  # not a submodule: `weights` is the only state
            self.weights = connector.weight

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
            if self.backend == "torch":
                return self._simulate(x)
            values = self.connector(x.cpu().to(torch.float64))
        return values.to(device=x.device, dtype=x.dtype)

    def _simulate(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * self.simulator.dim >= CHECKED_FROM:
            check_memory(self.circuit.num_qubits, self.weights.dtype, batch=x.shape[0])
        with threads_for(x.shape[0] * self.simulator.dim) as restore:
            # The weights' dtype: `layer.double()` simulates in complex128, as torch users expect.
            inputs, weights = x.to(self.weights.dtype), self.weights
            if restore is not None and torch.is_grad_enabled():  # the backward on one thread too
                inputs, weights = (BackwardThreads.apply(t, restore, restore) for t in (inputs, weights))
            values = self.expectations(self.simulator(inputs, weights))
            if restore is not None and values.requires_grad:
                values = BackwardThreads.apply(values, 1, restore)
            values = self._sample(values) if self.shots else values
            return values.to(dtype=x.dtype)

    def _sample(self, values: torch.Tensor) -> torch.Tensor:
        """Shot noise: each observable is a Pauli string (eigenvalues +-1), so its
        estimate from `shots` measurements is 2 * Binomial(shots, (1 + v) / 2) / shots - 1.
        The gradient passes straight through to the exact value."""
        p = ((1 + values.detach()) / 2).clamp(0, 1).cpu().double()
        counts = torch.binomial(torch.full_like(p, float(self.shots)), p, generator=self.generator)
        estimate = (2 * counts / self.shots - 1).to(values)
        return values + (estimate - values.detach())


# States in memory at once: forward keeps the final one beside the one being written; the
# adjoint backward walks back the state and the gradient, each with its next value.
STATES_IN_FLIGHT = 6
CHECKED_FROM = 2**22  # amplitudes (batch x 2**n) from which each forward checks free memory first


def check_memory(n_qubits: int, dtype: torch.dtype, batch: int = 1) -> None:
    """Refuse, before allocating anything, a circuit whose statevectors cannot fit in
    free memory (a sample's when the layer is built, the batch's before a large forward)."""
    if not isinstance(n_qubits, int) or n_qubits < 1:
        raise ArgumentError("n_qubits", n_qubits, "must be a positive integer")
    bytes_per_amplitude = 8 if dtype == torch.float32 else 16
    needed = batch * 2**n_qubits * bytes_per_amplitude * STATES_IN_FLIGHT
    available = psutil.virtual_memory().available
    if needed > available:
        what, advice = ("per sample", "") if batch == 1 else (f"for a batch of {batch}", " or a smaller batch")
        raise ArgumentError(
            "n_qubits",
            n_qubits,
            f"a {n_qubits}-qubit statevector needs about {_bytes(needed)} {what}, "
            f"{_bytes(available)} is free; use fewer qubits{advice}",
        )


def _bytes(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    power = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024**power:.1f} {units[power]}"
