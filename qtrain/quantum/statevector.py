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
from qiskit.converters import circuit_to_dag
from torch import nn

from qtrain.quantum.angles import Angles
from qtrain.quantum.cache import cached
from qtrain.quantum.steps import AdjointRun, BlockStep, PhaseStep, run_steps

BASIS = ["h", "sx", "rx", "ry", "u", "p", "rz", "cp", "rzz", "x", "y", "z", "s", "sdg", "t", "tdg", "cx", "cz", "swap"]
MATRIX_GATES = ("h", "sx", "rx", "ry", "u")
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
CONSTANT_PHASES = {"z": math.pi, "s": math.pi / 2, "sdg": -math.pi / 2, "t": math.pi / 4, "tdg": -math.pi / 4}
MATRICES = {
    "h": np.array([[1, 1], [1, -1]], dtype=np.complex128) / math.sqrt(2),
    "sx": np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2,
}
# RX(t) = cos(t/2) I + sin(t/2) K with K below; RY likewise.
ROTATION_GENERATORS = {"rx": np.array([[0, -1j], [-1j, 0]]), "ry": np.array([[0, -1], [1, 0]], dtype=np.complex128)}


class _PhaseRun:
    """A run of diagonal/permutation gates being compiled: where each basis state goes,
    and the phase it picks up (constant + angles @ patterns)."""

    def __init__(self, dim: int):
        self.perm = np.arange(dim)
        self.constant = np.zeros(dim)
        self.columns: list[tuple[int, np.ndarray]] = []  # (angle index, pattern)

    def bits(self, qubit: int) -> np.ndarray:
        """Bit `qubit` of the current output index of each input basis state."""
        return (self.perm >> qubit) & 1

    def add(self, gate: str, params, qubits, angles: Angles) -> None:
        bit, dim = self.bits, len(self.perm)
        if gate in ("p", "rz", "cp", "rzz"):
            pattern = {
                "p": lambda: bit(qubits[0]),
                "rz": lambda: bit(qubits[0]) - 0.5,
                "cp": lambda: bit(qubits[0]) * bit(qubits[1]),
                "rzz": lambda: -0.5 * (1 - 2 * (bit(qubits[0]) ^ bit(qubits[1]))),
            }[gate]()
            self.columns.append((angles.add(params[0]), pattern.astype(np.float64)))
        elif gate in CONSTANT_PHASES:
            self.constant += CONSTANT_PHASES[gate] * bit(qubits[0])
        elif gate == "cz":
            self.constant += math.pi * bit(qubits[0]) * bit(qubits[1])
        elif gate == "y":  # Y = i X Z
            self.constant += math.pi * bit(qubits[0]) + math.pi / 2 * np.ones(dim)
            self.perm = self.perm ^ (1 << qubits[0])
        elif gate in ("x", "cx"):
            mask = 1 if gate == "x" else bit(qubits[0])
            self.perm = self.perm ^ (mask << qubits[-1])
        elif gate == "swap":
            differ = bit(qubits[0]) ^ bit(qubits[1])
            self.perm = self.perm ^ ((differ << qubits[0]) | (differ << qubits[1]))
        else:  # transpile() guarantees the basis; this is a bug, not bad input
            raise NotImplementedError(gate)

    def is_real(self) -> bool:
        return not self.columns and bool(np.allclose(np.sin(self.constant), 0))


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
        run: _PhaseRun | None = None
        for instruction in _in_runs(transpile(circuit, basis_gates=BASIS, optimization_level=0)):
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
                run = run or _PhaseRun(self.dim)
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
                step.batched = _reads_inputs(step.gates)
                self.block_groups.setdefault((step.batched, step.width), []).append(position)
        for (batched, width), positions in self.block_groups.items():
            self.constants[f"blocks_{batched}_{width}"] = self._palette_index([self.steps[p].gates for p in positions])
            self.constants[f"kron{width}"] = _kron_index(width)
        if self.preparation is not None:
            self.preparation_batched = _reads_inputs(self.preparation)
            self.constants["preparation"] = self._palette_index([self.preparation])
            for first in range(0, self.n_qubits, PRODUCT_CHUNK_QUBITS):
                width = min(PRODUCT_CHUNK_QUBITS, self.n_qubits - first)
                self.constants[f"product_state{first}"] = _product_state_index(first, width)

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

    def _close_run(self, run: _PhaseRun) -> None:
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
        layer that would be n/4 block steps; see _product_state_index)."""
        if self.preparation is None:
            state = torch.zeros(batch, self.dim, dtype=const["fixed"].dtype, device=const["fixed"].device)
            state[:, 0] = 1
            return state
        qubits = _first_columns(_sample(palette, self.preparation_batched), const["preparation"])
        amplitudes = qubits.flatten(-2)
        state = None
        for first in reversed(range(0, self.n_qubits, PRODUCT_CHUNK_QUBITS)):  # high qubits: high bits
            chunk = _products(amplitudes, const[f"product_state{first}"])
            state = chunk if state is None else (state[..., :, None] * chunk[..., None, :]).flatten(-2)
        return state.expand(batch, self.dim).contiguous()

    def _step_params(self, x: torch.Tensor, w: torch.Tensor, const: dict, palette: torch.Tensor) -> list:
        """Each step's input: a phase run's angles (B, m), a block's matrix (B or -, K, K)."""
        phases = self.phase_fn(x, w) if self.phase_fn else None
        matrices = {}
        for (batched, width), positions in self.block_groups.items():
            group = _block_matrices(
                _sample(palette, batched), const[f"blocks_{batched}_{width}"], const[f"kron{width}"]
            )
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


def _sample(palette: torch.Tensor, batched: bool) -> torch.Tensor:
    """The palette of each sample, or sample 0's for gates that read no input."""
    return palette if batched else palette[0]


def _block_matrices(palette: torch.Tensor, index: torch.Tensor, kron_index: torch.Tensor) -> torch.Tensor:
    """(..., blocks, K, K): each block's matrix, per qubit the product of its gates,
    then the qubits' Kronecker product, taken as one gather and one product (see _kron_index)."""
    size = 2 ** index.shape[-1]
    return _products(_qubit_products(palette, index).flatten(-3), kron_index).unflatten(-1, (size, size))


def _products(factors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """out[..., j] = prod_i factors[..., index[i, j]]: one gather and one product."""
    return factors.index_select(-1, index.flatten()).unflatten(-1, index.shape).prod(-2)


def _qubit_products(palette: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(..., blocks, qubits, 2, 2): each qubit's gates (palette entries, index (blocks,
    depth, qubits)) multiplied in order."""
    # index_select, not indexing: its backward (index_add) is several times faster on small tensors
    gates = palette.index_select(-3, index.flatten()).unflatten(-3, index.shape)
    qubits = gates[..., 0, :, :, :]
    for level in range(1, index.shape[1]):
        qubits = gates[..., level, :, :, :] @ qubits
    return qubits


def _first_columns(palette: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(..., qubits, 2): each qubit's gates (index (1, depth, qubits)) applied to |0>,
    as vectors: one multiply and sum per gate after the first, no matrix products."""
    gates = palette.index_select(-3, index.flatten()).unflatten(-3, index.shape[1:])
    state = gates[..., 0, :, :, 0]
    for level in range(1, index.shape[1]):
        state = (gates[..., level, :, :, :] * state[..., None, :]).sum(-1)
    return state


def _reads_inputs(gates: list[list[tuple]]) -> bool:
    return any(gate[0] == "rotation" and gate[2] for qubit in gates for gate in qubit)


def _kron_index(width: int) -> np.ndarray:
    """Entry (r, c) of the Kronecker product of `width` 2x2 matrices Q_q (qubit q is bit
    q of r and c) is the product over q of Q_q[bit q of r, bit q of c]: row q of this
    index says where that factor sits in the flattened (width, 2, 2) stack."""
    size = 2**width
    rows, columns = np.divmod(np.arange(size * size), size)
    return np.array([4 * q + 2 * ((rows >> q) & 1) + ((columns >> q) & 1) for q in range(width)])


def _product_state_index(first: int, width: int) -> np.ndarray:
    """Amplitude k of the product state of qubits first..first+width-1 is the product
    over them of qubit q's amplitude of bit q - first of k: row q - first says where that
    factor sits in the flattened (n, 2) stack of every qubit's state."""
    k = np.arange(2**width)
    return np.array([2 * q + ((k >> (q - first)) & 1) for q in range(first, first + width)])


def _in_runs(circuit: QuantumCircuit) -> list:
    """The instructions in an order the circuit allows (a topological order of its DAG)
    that keeps gates of one kind together: while a gate of the kind just placed
    (matrix, or diagonal/permutation) is ready it goes next, so that the H gates of
    a feature map's second repetition do not cut the phase run of its first."""
    dag = circuit_to_dag(circuit)
    waiting = {node: len(list(dag.op_predecessors(node))) for node in dag.op_nodes()}
    ready = [node for node, count in waiting.items() if count == 0]
    order, matrix_run = [], True
    while ready:
        same_kind = [node for node in ready if (node.op.name in MATRIX_GATES) == matrix_run]
        node = min(same_kind or ready, key=lambda n: n._node_id)
        matrix_run = node.op.name in MATRIX_GATES
        ready.remove(node)
        order.append(node)
        for successor in dag.op_successors(node):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.append(successor)
    return order


def _u_matrix(theta: float, phi: float, lam: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array([[c, -np.exp(1j * lam) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]])
