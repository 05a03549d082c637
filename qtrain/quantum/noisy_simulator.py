"""A noisy circuit (qtrain.quantum.noise) simulated in torch, batched and differentiable:
exactly as a density matrix, or sampled as quantum trajectories.

Written by hand: qiskit-aer runs one bound circuit at a time without gradients, and the
torch simulators (TorchQuantum, PennyLane's default.mixed) take neither qiskit's device
noise models nor its readout errors.

Both methods cut the circuit into groups: each two-qubit instruction with the one-qubit
instructions on its qubits since their last group, and at the end what is left, two
qubits a group. A group is one matrix per sample (the product of its instructions',
built from small matrices; the rotations read the sample's angles), applied to the state
by one matmul: a pass over the state costs a two-qubit instruction, not a gate.

- `DensityMatrix`: rho in the Pauli basis, a real tensor (B, 4, ..., 4) of Tr(rho P),
  one axis per qubit (I, X, Y, Z); an instruction is the Pauli transfer matrix of its
  gate followed by its error (real: a quarter of the arithmetic of complex
  superoperators). An output is Tr(rho O) with O its measured observable.
- `Trajectories`: psi as (B * T, 2, ..., 2). Each noisy instruction's error is one of its
  Kraus operators K_j, drawn with the fixed probability q_j = Tr(K_j^dag K_j) / d and
  scaled by 1 / sqrt(q_j): each trajectory's <psi|O|psi> is then an unbiased estimate of
  Tr(rho O) whatever the state, and its gradient (the draws held fixed, their
  probabilities independent of the parameters) an unbiased estimate of the exact
  gradient. `standard_error` holds the last forward's, per sample and output.

Qubit q is bit q of a basis index, as in qiskit; the state's axis n - q is qubit q.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from qtrain.quantum.angles import Angles
from qtrain.quantum.cache import cached
from qtrain.quantum.noise import NoisyCircuit

PAULIS = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]
GROUND = np.array([1.0, 0, 0, 1])  # |0><0| = (I + Z) / 2: Tr(rho P) for P = I, X, Y, Z
IDENTITY = np.array([1.0, 0, 0, 0])  # Tr(P I) / 2
# The Pauli transfer matrix of RZ(theta) (and of P(theta), the same up to a phase), RX, RY:
# the column of axis a gains sin(theta) at axis b (I, X, Y, Z = 0, 1, 2, 3).
ROTATED = {"rz": (1, 2), "p": (1, 2), "rx": (2, 3), "ry": (3, 1)}


@dataclass
class Group:
    qubits: tuple[int, ...]  # one or two simulated qubits; the matrix's qubit 0 first
    chains: list[list[int]] = field(default_factory=list)  # per qubit, its one-qubit instructions in order
    anchor: int | None = None  # the two-qubit instruction last, if any


def groups(circuit: NoisyCircuit, indices: list[int]) -> list[Group]:
    """The instructions `indices` (in order) cut into groups."""
    pending: dict[int, list[int]] = {}
    result = []
    for i in indices:
        instruction = circuit.instructions[i]
        if len(instruction.qubits) == 1:
            pending.setdefault(instruction.qubits[0], []).append(i)
            continue
        if len(instruction.qubits) != 2:
            raise ValueError(f"cannot simulate the {len(instruction.qubits)}-qubit gate {instruction.name}")
        a, b = instruction.qubits
        result.append(Group((a, b), [pending.pop(a, []), pending.pop(b, [])], i))
    left = sorted(pending)
    for first in range(0, len(left), 2):
        pair = tuple(left[first : first + 2])
        result.append(Group(pair, [pending[q] for q in pair]))
    return result


def pauli_transfer(kraus: list[np.ndarray]) -> np.ndarray:
    """R[i, j] = Tr(P_i E(P_j)) / 2**k for the channel E(.) = sum_j K_j (.) K_j^dag on k
    qubits, over the k-qubit Pauli strings (the most significant qubit's letter first)."""
    d = kraus[0].shape[0]
    basis = [functools.reduce(np.kron, letters) for letters in itertools.product(PAULIS, repeat=d.bit_length() - 1)]
    images = [sum(k @ p @ k.conj().T for k in kraus) for p in basis]
    return np.array([[np.trace(p @ image).real / d for image in images] for p in basis])


def _pauli_components(operator: np.ndarray) -> np.ndarray:
    """Tr(P operator) / 2 for P = I, X, Y, Z (real: the operator is Hermitian)."""
    return np.array([np.trace(p @ operator).real / 2 for p in PAULIS])


def rotation_unitary(name: str, angle: torch.Tensor) -> torch.Tensor:
    """The unitaries (..., 2, 2) of RX, RY, RZ or P at `angle` (...)."""
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    real = {"rx": [c, zero, zero, c], "ry": [c, -s, s, c], "rz": [c, zero, zero, c]}
    imag = {"rx": [zero, -s, -s, zero], "ry": [zero] * 4, "rz": [-s, zero, zero, s]}
    real["p"], imag["p"] = [one, zero, zero, torch.cos(angle)], [zero, zero, zero, torch.sin(angle)]
    real, imag = real[name], imag[name]
    return torch.stack([torch.complex(r, i) for r, i in zip(real, imag)], -1).unflatten(-1, (2, 2))


def apply(state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...]) -> torch.Tensor:
    """`matrix` (1 or rows, D, D) on `qubits` (its qubit 0 first) of `state` (rows, d, ..., d)."""
    n = state.dim() - 1
    axes = [n - q for q in reversed(qubits)]
    front = list(range(1, len(axes) + 1))
    moved = state.movedim(axes, front)
    shape = moved.shape
    return (matrix @ moved.reshape(shape[0], matrix.shape[-1], -1)).reshape(shape).movedim(front, axes)


def kron(high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product (..., a, a) x (..., b, b) -> (..., ab, ab)."""
    size = high.shape[-1] * low.shape[-1]
    batch = torch.broadcast_shapes(high.shape[:-2], low.shape[:-2])
    return torch.einsum("...ij,...kl->...ikjl", high, low).reshape(*batch, size, size)


class Chains:
    """The products of many chains of factors at once, one step of all chains at a time
    (a few large matmuls instead of one small one per factor: small circuits are bound by
    the number of ops). A factor is ("const", matrix), merged with its const neighbours
    here, or a key into the per-row matrices of a forward (a rotation, a draw); chains are
    padded with identities in front to the same length."""

    def __init__(self, chains: list[list[tuple]], size: int):
        self.size, self.count = size, len(chains)
        self.keys = sorted({factor for chain in chains for factor in chain if factor[0] != "const"})
        column = {key: k for k, key in enumerate(self.keys)}
        self.consts: list[np.ndarray] = [np.eye(size)]  # index 0: the identity of the padding
        merged = [self._merged(chain) for chain in chains]
        length = max(map(len, merged), default=0)
        self.steps = []  # per step: the consts' indices, the rows' columns, which chains read the rows, any
        for t in range(length):
            padded = [[("const", 0)] * (length - len(chain)) + chain for chain in merged]
            dynamic = np.array([chain[t][0] != "const" for chain in padded])
            consts = np.array([0 if d else chain[t][1] for d, chain in zip(dynamic, padded)])
            rows = np.array([column[chain[t]] if d else 0 for d, chain in zip(dynamic, padded)])
            self.steps.append((torch.as_tensor(consts), torch.as_tensor(rows), torch.as_tensor(dynamic), dynamic.any()))
        self.bank = np.stack(self.consts)

    def _merged(self, chain: list[tuple]) -> list[tuple]:
        merged: list[tuple] = []
        for kind, item in chain:
            if kind != "const":
                merged.append((kind, item))
            elif merged and merged[-1][0] == "const":
                self.consts[merged[-1][1]] = item @ self.consts[merged[-1][1]]
            else:
                self.consts.append(item)
                merged.append(("const", len(self.consts) - 1))
        return merged

    def __call__(self, values: dict, bank: torch.Tensor) -> torch.Tensor:
        """(rows or 1, chains, size, size); `values[key]`: (rows, size, size); `bank`:
        the consts as a tensor (self.bank)."""
        per_row = torch.stack([values[key] for key in self.keys], 1) if self.keys else None
        total = None
        for consts, rows, dynamic, any_dynamic in self.steps:
            factor = bank[consts.to(bank.device)][None]
            if any_dynamic:  # a Python bool: torch.export cannot branch on a tensor
                picked = per_row.index_select(1, rows.to(bank.device))
                factor = torch.where(dynamic.to(bank.device)[None, :, None, None], picked, factor)
            total = factor if total is None else factor @ total
        if total is None:  # no factor at all: identities
            return bank[torch.zeros(self.count, dtype=torch.long, device=bank.device)][None]
        return total


class Program:
    """Instructions of the circuit cut into groups, and each group's matrix: each qubit's
    chain of one-qubit factors, joined by a Kronecker product, then the two-qubit
    instruction's factors."""

    def __init__(self, simulator: NoisySimulator, indices: list[int]):
        self.groups = groups(simulator.circuit, indices)

        def factors(instructions: list[int]) -> list[tuple]:
            return [factor for i in instructions for factor in simulator.instruction_factors(i)]

        one_qubit = [factors(chain) for group in self.groups for chain in (group.chains + [[]])[:2]]
        self.one_qubit = Chains(one_qubit, simulator.local_dim)  # per group: its low qubit's chain, its high one's
        two_qubit = [factors([group.anchor] if group.anchor is not None else []) for group in self.groups]
        self.two_qubit = Chains(two_qubit, simulator.local_dim**2)
        self.constant = simulator.constant

    def matrices(self, values: dict, like: torch.Tensor) -> list[torch.Tensor]:
        if not self.groups:
            return []
        chains = self.one_qubit(values, self.constant(self.one_qubit.bank, like))
        low, high = chains[:, 0::2], chains[:, 1::2]
        pairs = self.two_qubit(values, self.constant(self.two_qubit.bank, like)) @ kron(high, low)
        # unbind, not indexing: the backward of an index fills a zero tensor for each group
        return [
            pair if len(g.qubits) == 2 else single
            for g, pair, single in zip(self.groups, pairs.unbind(1), low.unbind(1))
        ]

    def run(self, state: torch.Tensor, values: dict, like: torch.Tensor) -> torch.Tensor:
        for group, matrix in zip(self.groups, self.matrices(values, like)):
            state = apply(state, matrix, group.qubits)
        return state

    def run_back(self, state: torch.Tensor, values: dict, like: torch.Tensor) -> torch.Tensor:
        """The transposed groups in reverse order: observables (the Heisenberg picture)."""
        for group, matrix in reversed(list(zip(self.groups, self.matrices(values, like)))):
            state = apply(state, matrix.mT, group.qubits)
        return state


class NoisySimulator(nn.Module):
    """What both methods share: the angles, each instruction's factors
    (`instruction_factors`: ("const", matrix), ("rotation", i), ("draw", i)), programs."""

    local_dim = 2  # the size of one qubit's axis of the state

    def __init__(self, circuit: NoisyCircuit, input_params, weight_params):
        super().__init__()
        self.circuit, self.n_qubits = circuit, circuit.n_qubits
        self._cast: dict = {}
        angles = Angles(input_params, weight_params)
        self.by_gate: dict[str, list[int]] = {}  # rotation instructions by gate
        for i, instruction in enumerate(circuit.instructions):
            if instruction.matrix is None:
                self.by_gate.setdefault(instruction.name, []).append(i)
        self.columns = {
            name: [angles.add(circuit.instructions[i].angle) for i in members] for name, members in self.by_gate.items()
        }
        self.reading_inputs = {
            i
            for members in self.by_gate.values()
            for i in members
            if angles.reads_inputs(circuit.instructions[i].angle)
        }
        self.angles = angles.compile()

    def instruction_factors(self, i: int) -> list[tuple]:
        raise NotImplementedError

    def rotation_matrices(self, name: str, theta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def constant(self, array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        key = (id(array), like.dtype, like.device)
        return cached(self._cast, key, lambda: torch.as_tensor(array, dtype=like.dtype, device=like.device))

    def rotation_values(self, x: torch.Tensor, w: torch.Tensor, like: torch.Tensor) -> dict:
        """Each rotation's matrix (rows, D, D) at the samples' angles, those of one gate
        computed together."""
        if self.angles is None:
            return {}
        angles = self.angles(x, w)
        values = {}
        for name, members in self.by_gate.items():
            computed = self.rotation_matrices(name, angles[:, self.columns[name]], like)
            values |= {("rotation", i): computed[:, k] for k, i in enumerate(members)}
        return values


class DensityMatrix(NoisySimulator):
    """Only the part of the circuit that reads the inputs runs on the batch's states; the
    rest, the same channel for every sample, runs backwards on the measured observables
    (as Pauli transfer vectors: the Heisenberg picture), one row per output instead of
    one per sample, and each output is the pairing of the two. The split: an instruction
    reads the inputs, or comes before one that does on a qubit it shares; the others
    commute past them to the end."""

    local_dim = 4

    def __init__(self, circuit: NoisyCircuit, input_params, weight_params):
        super().__init__(circuit, input_params, weight_params)
        inputs_part, later = set(), set()  # `later`: qubits with an instruction of the input part after
        for i in reversed(range(len(circuit.instructions))):
            qubits = set(circuit.instructions[i].qubits)
            if i in self.reading_inputs or qubits & later:
                inputs_part.add(i)
                later |= qubits
        self.states = Program(self, sorted(inputs_part))
        self.observables = Program(self, sorted(set(range(len(circuit.instructions))) - inputs_part))

    def instruction_factors(self, i: int) -> list[tuple]:
        instruction = self.circuit.instructions[i]
        gate = ("const", pauli_transfer([instruction.matrix])) if instruction.matrix is not None else ("rotation", i)
        return [gate] + ([("const", pauli_transfer(instruction.kraus))] if instruction.kraus else [])

    def rotation_matrices(self, name: str, theta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A rotation by theta of two of (X, Y, Z): the axis `a`'s column gains sin theta at `b`."""
        a, b = ROTATED[name]
        c, s = torch.cos(theta).to(like.dtype)[..., None, None], torch.sin(theta).to(like.dtype)[..., None, None]
        fixed, cosine, sine = (torch.zeros(4, 4, dtype=like.dtype, device=like.device) for _ in range(3))
        fixed.fill_diagonal_(1)
        fixed[a, a] = fixed[b, b] = 0
        cosine[a, a] = cosine[b, b] = 1
        sine[b, a], sine[a, b] = 1, -1
        return fixed + c * cosine + s * sine

    def measured_columns(self) -> np.ndarray:
        """W (4**n, outputs): Tr(rho O) = (Tr(rho P))_P @ W, each column the product over
        qubits of Tr(P_q o_q) / 2 for an output's term (coeff, {q: o_q})."""
        columns = []
        for terms in self.circuit.measured:
            column = 0
            for coeff, factors in terms:
                vectors = [
                    _pauli_components(factors[q]) if q in factors else IDENTITY for q in reversed(range(self.n_qubits))
                ]
                column = column + coeff * functools.reduce(np.kron, vectors)
            columns.append(column)
        return np.stack(columns, axis=1).real

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        like = torch.empty(0, dtype=x.dtype, device=x.device)
        if not hasattr(self, "readout"):
            self.readout = self.measured_columns()
            self.ground = functools.reduce(np.kron, [GROUND] * self.n_qubits)
        shape = (4,) * self.n_qubits
        state = self.constant(self.ground, like).expand(x.shape[0], -1).reshape(x.shape[0], *shape)
        state = self.states.run(state, self.rotation_values(x, w, like), like)
        observables = self.constant(self.readout, like).T.reshape(-1, *shape)
        observables = self.observables.run_back(observables, self.rotation_values(x[:1], w, like), like)
        return state.reshape(x.shape[0], -1) @ observables.reshape(observables.shape[0], -1).T


class Trajectories(NoisySimulator):
    def __init__(self, circuit: NoisyCircuit, input_params, weight_params, trajectories: int, generator=None):
        self.options = {}  # noisy instruction -> (its Kraus operators / sqrt(q_j), q_j)
        for i, instruction in enumerate(circuit.instructions):
            if instruction.kraus:
                d = instruction.kraus[0].shape[0]
                weights = np.array([np.trace(k.conj().T @ k).real / d for k in instruction.kraus])
                scaled = np.stack([k / np.sqrt(q) for k, q in zip(instruction.kraus, weights)])
                self.options[i] = (scaled, weights / weights.sum())
        super().__init__(circuit, input_params, weight_params)
        self.program = Program(self, list(range(len(circuit.instructions))))
        self.trajectories, self.generator = trajectories, generator
        self.standard_error: torch.Tensor | None = None

    def instruction_factors(self, i: int) -> list[tuple]:
        instruction = self.circuit.instructions[i]
        gate = ("const", instruction.matrix) if instruction.matrix is not None else ("rotation", i)
        return [gate] + ([("draw", i)] if i in self.options else [])

    def rotation_matrices(self, name: str, theta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return rotation_unitary(name, theta).to(like.dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        like = torch.empty(0, dtype=torch.complex128 if x.dtype == torch.float64 else torch.complex64, device=x.device)
        rows = x.shape[0] * self.trajectories
        values = self.rotation_values(x.repeat_interleave(self.trajectories, 0), w, like)
        for i, (scaled, weights) in self.options.items():
            draws = torch.multinomial(torch.as_tensor(weights), rows, replacement=True, generator=self.generator)
            values["draw", i] = self.constant(scaled, like)[draws.to(x.device)]
        state = torch.zeros((rows,) + (2,) * self.n_qubits, dtype=like.dtype, device=x.device)
        state.view(rows, -1)[:, 0] = 1
        state = self.program.run(state, values, like)
        outputs = torch.stack([self._expectation(state, terms, like) for terms in self.circuit.measured], -1)
        outputs = outputs.unflatten(0, (x.shape[0], self.trajectories))
        self.standard_error = outputs.detach().std(1) / self.trajectories**0.5
        return outputs.mean(1)

    def _expectation(self, state: torch.Tensor, terms, like: torch.Tensor) -> torch.Tensor:
        total = 0
        flat = state.reshape(state.shape[0], -1)
        for coeff, factors in terms:
            image = state
            for q, matrix in factors.items():
                image = apply(image, self.constant(matrix, like)[None], (q,))
            total = total + coeff * (flat.conj() * image.reshape(flat.shape)).sum(-1)
        return total.real
