"""A qiskit circuit compiled once into batched, differentiable torch statevector code.

Written by hand because no maintained library does this for qiskit 2.x circuits
(TorchQuantum-ng rewrites circuits gate by gate in its own API; PennyLane's converter
caps qiskit at 2.3). The circuit is transpiled to a small gate basis, ordered so that
gates of one kind stay together, and cut into steps (qtrain.quantum.steps): runs of
diagonal and permutation gates, and layers of one-qubit gates fused into blocks of
neighbouring qubits. A circuit of real gates (RY, H, CX, CZ, ...: `real_amplitudes`
on `angle_ry`) is simulated in real arithmetic, half the memory traffic.

Gradients: a small state (under KEEP_STATES_BELOW amplitudes) goes through plain
autograd, which keeps a state per step; a larger one through `AdjointRun`
(qtrain.quantum.steps), which keeps only the final state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile
from torch import nn

from qtrain.quantum.angles import Angles
from qtrain.quantum.cache import cached
from qtrain.quantum.palette import (
    block_matrices,
    first_columns,
    kron_index,
    product_state_index,
    products,
    reads_inputs,
    sample,
)
from qtrain.quantum.phase_runs import MATRIX_GATES, PhaseRun, in_runs
from qtrain.quantum.steps import AdjointRun, BlockStep, PhaseStep, run_steps

BASIS = ["h", "sx", "rx", "ry", "u", "p", "rz", "cp", "rzz", "x", "y", "z", "s", "sdg", "t", "tdg", "cx", "cz", "swap"]
BLOCK_QUBITS = 4
# A circuit this narrow takes each layer as one block: a 64 x 64 matmul costs less than
# the ops of a second step, which small circuits pay for (they are bound by op overhead).
ONE_BLOCK_UP_TO = 6
# The first layer's product state is built in chunks of this many qubits, each by one
# gather and product (memory: qubits x 2**qubits), then joined by outer products.
PRODUCT_CHUNK_QUBITS = 8
# Below this many amplitudes (batch x 2**n) autograd keeps a state per step (a few KB
# each): fewer ops than the adjoint walk back, which small circuits would pay for.
KEEP_STATES_BELOW = 2**15
MATRICES = {
    "h": np.array([[1, 1], [1, -1]], dtype=np.complex128) / math.sqrt(2),
    "sx": np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2,
}
# RX(t) = cos(t/2) I + sin(t/2) K with K below; RY likewise.
ROTATION_GENERATORS = {"rx": np.array([[0, -1j], [-1j, 0]]), "ry": np.array([[0, -1], [1, 0]], dtype=np.complex128)}


class TorchStatevector(nn.Module):
    """`forward(x, w)`: the statevectors (B, 2**n) of the circuit at inputs x (B, n_in)
    and weights w (n_w,), in x's dtype (real circuits) or its complex counterpart."""

    def __init__(self, circuit: QuantumCircuit, input_params, weight_params):
        super().__init__()
        self.n_qubits = circuit.num_qubits
        self.dim = 2**self.n_qubits
        self.constants: dict[str, np.ndarray] = {}  # cast per dtype and device, once
        self._cast: dict = {}
        self.phase_angles = Angles(input_params, weight_params)
        self.rotation_angles = Angles(input_params, weight_params)
        self.steps: list[PhaseStep | BlockStep] = []
        self.real_runs: list[bool] = []
        self.generators: list[np.ndarray] = []  # per rotation: RX's or RY's
        self.fixed: list[np.ndarray] = []  # the 2x2 matrices of H, SX, U
        self.preparation: list[list[tuple]] | None = None  # a first layer's gates per qubit: see _initial_state
        layer: dict[int, list[tuple]] = {}
        run: PhaseRun | None = None
        for instruction in in_runs(transpile(circuit, basis_gates=BASIS, optimization_level=0)):
            gate, params = instruction.op.name, instruction.op.params
            qubits = [circuit.find_bit(q).index for q in instruction.qargs]
            if gate in MATRIX_GATES:
                if run is not None:
                    self._close_run(run)
                    run = None
                layer.setdefault(qubits[0], []).append(self._one_qubit_gate(gate, params))
            else:
                self._close_layer(layer)
                layer = {}
                run = run or PhaseRun(self.dim)
                run.add(gate, params, qubits, self.phase_angles)
        if run is not None:
            self._close_run(run)
        self._close_layer(layer)
        self._palette_constants()
        self.real = all(self.real_runs) and all(np.allclose(np.imag(c), 0) for c in self.constants.values())
        self.phase_fn = self.phase_angles.compile()
        self.rotation_fn = self.rotation_angles.compile()

    def _one_qubit_gate(self, gate: str, params) -> tuple:
        if gate in ROTATION_GENERATORS:
            self.generators.append(ROTATION_GENERATORS[gate])
            return ("rotation", self.rotation_angles.add(params[0]), self.rotation_angles.reads_inputs(params[0]))
        self.fixed.append(MATRICES[gate] if gate in MATRICES else _u_matrix(*map(float, params)))
        return ("fixed", len(self.fixed) - 1)

    def _palette_constants(self) -> None:
        """Every one-qubit matrix of a forward pass sits in one palette (batch, P, 2, 2):
        the rotations, the fixed matrices, the identity. A block picks its matrices by an
        index (gates in order, qubits lowest first); a block whose gates read no input is
        the same for every sample and takes sample 0's. Blocks of one width that read
        inputs or not are built together, a few ops for all of them."""
        self.constants["fixed"] = np.array([*self.fixed, np.eye(2)], dtype=np.complex128).reshape(-1, 2, 2)
        if self.generators:
            self.constants["generators"] = np.array(self.generators, dtype=np.complex128)
            self.constants["eye"] = np.eye(2, dtype=np.complex128)
        self.block_groups: dict[tuple[bool, int], list[int]] = {}  # (batched, width): its steps' positions
        for position, step in enumerate(self.steps):
            if isinstance(step, BlockStep):
                step.batched = reads_inputs(step.gates)
                self.block_groups.setdefault((step.batched, step.width), []).append(position)
        for (batched, width), positions in self.block_groups.items():
            self.constants[f"blocks_{batched}_{width}"] = self._palette_index([self.steps[p].gates for p in positions])
            self.constants[f"kron{width}"] = kron_index(width)
        if self.preparation is not None:
            self.preparation_batched = reads_inputs(self.preparation)
            self.constants["preparation"] = self._palette_index([self.preparation])
            for first in range(0, self.n_qubits, PRODUCT_CHUNK_QUBITS):
                width = min(PRODUCT_CHUNK_QUBITS, self.n_qubits - first)
                self.constants[f"product_state{first}"] = product_state_index(first, width)

    def _palette_index(self, blocks: list[list[list[tuple]]]) -> np.ndarray:
        """(blocks, depth, qubits): each block's qubits' gates in order, padded with the identity."""
        identity = ("fixed", len(self.fixed))
        depth = max(len(gates) for block in blocks for gates in block)
        index = [
            [[self._position(g[t] if t < len(g) else identity) for g in block] for t in range(depth)]
            for block in blocks
        ]
        return np.array(index, dtype=np.int64)

    def _position(self, gate: tuple) -> int:
        """A gate's place in the palette: the rotations come first, then the fixed matrices."""
        return gate[1] if gate[0] == "rotation" else len(self.generators) + gate[1]

    def _close_run(self, run: PhaseRun) -> None:
        name = f"run{len(self.steps)}"
        inverse = np.empty_like(run.perm)
        inverse[run.perm] = np.arange(self.dim)
        columns = sorted(run.columns, key=lambda column: column[0])
        self.constants[f"{name}_phase"] = run.constant
        self.constants[f"{name}_perm"], self.constants[f"{name}_inverse"] = run.perm, inverse
        if columns:  # torch.export cannot save empty constants
            self.constants[f"{name}_patterns"] = np.array([p for _, p in columns]).reshape(len(columns), self.dim)
        has_phase = bool(columns) or bool(np.any(run.constant))
        identity = bool((run.perm == np.arange(self.dim)).all())
        self.steps.append(PhaseStep(name, [i for i, _ in columns], has_phase, identity))
        self.real_runs.append(run.is_real())

    def _close_layer(self, layer: dict[int, list[tuple]]) -> None:
        """The layer's gates as blocks of BLOCK_QUBITS neighbouring qubits (aligned); the
        circuit's first layer, acting on |0...0>, prepares a product state instead."""
        if layer and not self.steps and self.preparation is None:
            self.preparation = [layer.get(q, []) for q in range(self.n_qubits)]
            return
        block_qubits = self.n_qubits if self.n_qubits <= ONE_BLOCK_UP_TO else BLOCK_QUBITS
        for first in sorted({q - q % block_qubits for q in layer}):
            width = min(block_qubits, self.n_qubits - first)
            gates = [layer.get(q, []) for q in range(first, first + width)]
            self.steps.append(BlockStep(first, width, gates, self.n_qubits))

    def _constants(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        """The compiled constants as tensors for this state dtype and device, made once."""

        def cast(array: np.ndarray) -> torch.Tensor:
            if array.dtype.kind == "i":
                return torch.as_tensor(array, dtype=torch.long, device=device)
            if array.dtype.kind == "c" and not dtype.is_complex:
                array = array.real
            return torch.as_tensor(array, dtype=dtype if array.dtype.kind == "c" else dtype.to_real(), device=device)

        return cached(self._cast, (dtype, device), lambda: {name: cast(a) for name, a in self.constants.items()})

    def state_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype if self.real else dtype.to_complex()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        dtype = self.state_dtype(x.dtype)
        const = self._constants(dtype, x.device)
        palette = self._palette(x, w, const)
        params = self._step_params(x, w, const, palette)
        state = self._initial_state(x.shape[0], const, palette)
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
        small = state.numel() < KEEP_STATES_BELOW
        if small or tracing or not torch.is_grad_enabled():
            return run_steps(self.steps, const, state, params)
        return AdjointRun.apply(self.steps, const, state, *params)

    def _initial_state(self, batch: int, const: dict, palette: torch.Tensor) -> torch.Tensor:
        """|0...0>, or the product state the first layer makes of it: qubit q's state is
        column 0 of its matrix, the state their Kronecker product (a few small ops, for a
        layer that would be n/4 block steps; see palette.product_state_index)."""
        if self.preparation is None:
            state = torch.zeros(batch, self.dim, dtype=const["fixed"].dtype, device=const["fixed"].device)
            state[:, 0] = 1
            return state
        qubits = first_columns(sample(palette, self.preparation_batched), const["preparation"])
        amplitudes = qubits.flatten(-2)
        state = None
        for first in reversed(range(0, self.n_qubits, PRODUCT_CHUNK_QUBITS)):  # high qubits: high bits
            chunk = products(amplitudes, const[f"product_state{first}"])
            state = chunk if state is None else (state[..., :, None] * chunk[..., None, :]).flatten(-2)
        return state.expand(batch, self.dim).contiguous()

    def _step_params(self, x: torch.Tensor, w: torch.Tensor, const: dict, palette: torch.Tensor) -> list:
        """Each step's input: a phase run's angles (B, m), a block's matrix (B or -, K, K)."""
        phases = self.phase_fn(x, w) if self.phase_fn else None
        matrices = {}
        for (batched, width), positions in self.block_groups.items():
            group = block_matrices(sample(palette, batched), const[f"blocks_{batched}_{width}"], const[f"kron{width}"])
            matrices |= {p: group[..., i, :, :] for i, p in enumerate(positions)}
        return [
            matrices[p] if isinstance(step, BlockStep) else phases[:, step.indices] if step.indices else None
            for p, step in enumerate(self.steps)
        ]

    def _palette(self, x: torch.Tensor, w: torch.Tensor, const: dict) -> torch.Tensor:
        """(batch, P, 2, 2): see _palette_constants. RX(t), RY(t) = cos(t/2) I + sin(t/2) K."""
        fixed = const["fixed"].expand(x.shape[0], -1, -1, -1)
        if self.rotation_fn is None:
            return fixed
        half = self.rotation_fn(x, w)[..., None, None] / 2
        rotations = torch.cos(half) * const["eye"] + torch.sin(half) * const["generators"]
        return torch.cat([rotations, fixed], 1)


def _u_matrix(theta: float, phi: float, lam: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array([[c, -np.exp(1j * lam) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]])
