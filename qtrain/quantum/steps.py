"""The two kinds of step a compiled circuit is cut into, each applied to a batch of
statevectors (batch, 2**n), undone (its inverse: the adjoint backward walks the
circuit back instead of keeping every state), and differentiated.

- `PhaseStep`: a run of diagonal and permutation gates (P, RZ, CP, RZZ, Z, S, T, CZ,
  X, CX, SWAP, Y): one multiply by exp(i phase), phase = constant + angles @ patterns,
  and one gather, however many gates the run holds (the ZZ feature map is such a run).
- `BlockStep`: the one-qubit gates of a layer on k neighbouring qubits as one
  2**k x 2**k matrix (the Kronecker product of the qubits' 2x2s), applied by one
  matmul on a reshaped view. A rotation layer on n qubits costs n/k passes over the
  state instead of n; k = 4 measured fastest (a 16x16 matmul is still bound by
  memory, a 64x64 one by arithmetic).

Qubit q is bit q of the basis index, as in qiskit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

# Below this many amplitudes (batch x 2**n) a step runs on one thread: threads gain
# nothing there, and on a busy machine a parallel op waits for a descheduled thread
# (the 4-qubit step went from 2.8 to 7.3 ms beside one CPU-bound process).
ONE_THREAD_BELOW = 2**15


@contextlib.contextmanager
def threads_for(amplitudes: int):
    """One intra-op thread for small states, torch's setting otherwise. Yields torch's
    setting when it switched to one thread (for BackwardThreads), else None."""
    previous = torch.get_num_threads()
    tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
    if amplitudes >= ONE_THREAD_BELOW or previous == 1 or tracing:
        yield None
        return
    torch.set_num_threads(1)
    try:
        yield previous
    finally:
        torch.set_num_threads(previous)


class BackwardThreads(torch.autograd.Function):
    """The identity, whose backward sets torch's intra-op threads to `count`. Autograd
    runs a small circuit's backward after threads_for has given torch's setting back,
    so the layer puts one of these at the circuit's output (count 1) and one at each of
    its inputs (count: torch's setting): the circuit's backward runs on one thread, the
    encoder's beneath it on torch's. Should no input's node run (a backward that stops
    inside the circuit), the end-of-pass callback (as DDP uses) gives the setting back."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, count: int, restore: int) -> torch.Tensor:
        ctx.count, ctx.restore = count, restore
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        torch.set_num_threads(ctx.count)
        if ctx.count != ctx.restore:
            torch.autograd.Variable._execution_engine.queue_callback(lambda: torch.set_num_threads(ctx.restore))
        return grad, None, None


@dataclass
class PhaseStep:
    name: str  # its constants: <name>_phase (dim,), <name>_patterns (m, dim), <name>_perm, <name>_inverse
    indices: list[int]  # its columns of the phase angles
    has_phase: bool  # False: a pure permutation (a CX chain)
    identity: bool  # True: no permutation (a run of phases only)

    def _phase(self, state: torch.Tensor, angles: torch.Tensor | None, const: dict) -> torch.Tensor:
        phase = const[f"{self.name}_phase"]
        if angles is None:
            return phase
        return phase + angles @ const[f"{self.name}_patterns"]

    def apply(self, state: torch.Tensor, angles: torch.Tensor | None, const: dict) -> torch.Tensor:
        if self.has_phase:
            state = state * self._factor(state, angles, const, sign=1)
        return state if self.identity else _gather(state, const[f"{self.name}_inverse"])

    def undo(self, state: torch.Tensor, angles: torch.Tensor | None, const: dict) -> torch.Tensor:
        state = state if self.identity else _gather(state, const[f"{self.name}_perm"])
        return state * self._factor(state, angles, const, sign=-1) if self.has_phase else state

    def _factor(self, state: torch.Tensor, angles, const: dict, sign: int) -> torch.Tensor:
        phase = self._phase(state, angles, const)
        if not state.is_complex():  # a real circuit: every constant phase is a multiple of pi
            return torch.cos(phase)
        return torch.polar(torch.ones_like(phase), sign * phase)

    def angle_grad(self, before: torch.Tensor, grad: torch.Tensor, angles: torch.Tensor, const: dict):
        """d loss / d angles, given the state before the step and the loss's gradient after it."""
        with torch.enable_grad():
            leaf = angles.detach().requires_grad_()
            (result,) = torch.autograd.grad(self.apply(before, leaf, const), leaf, grad)
        return result


def _gather(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """state[:, index]; index_select measured 8x faster than indexing on the CPU."""
    return torch.index_select(state, 1, index)


@dataclass
class BlockStep:
    first: int  # the lowest qubit of the block
    width: int  # k qubits: a 2**k x 2**k matrix
    gates: list[list[tuple]]  # per qubit of the block, lowest first: its gates in order
    n_qubits: int
    batched: bool = False  # a matrix per sample (its gates read inputs), else one for all

    def _view(self, state: torch.Tensor) -> torch.Tensor:
        """The state as (batch, high bits, 2**k, low bits), without the axes of size 1."""
        batch, low = state.shape[0], 2**self.first
        high = 2 ** (self.n_qubits - self.first - self.width)
        if low == 1:
            return state.view(batch, high, 2**self.width)
        if high == 1:
            return state.view(batch, 2**self.width, low)
        return state.view(batch, high, 2**self.width, low)

    def _matmul(self, matrix: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        if self.first == 0:  # the block is the fastest axis: (rows, 2**k) @ matrix^T, one large matmul
            return view @ matrix.mT
        if view.dim() == 4 and matrix.dim() == 3:
            matrix = matrix[:, None]  # one matrix per sample, over the high bits
        return matrix @ view

    def apply(self, state: torch.Tensor, matrix: torch.Tensor, const: dict) -> torch.Tensor:
        return self._matmul(matrix, self._view(state)).reshape(state.shape)

    def undo(self, state: torch.Tensor, matrix: torch.Tensor, const: dict) -> torch.Tensor:
        return self._matmul(matrix.mH, self._view(state)).reshape(state.shape)

    def matrix_grad(self, before: torch.Tensor, grad: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """d loss / d matrix (torch's convention for complex tensors: grad_M = g v^H),
        summed over the batch when one matrix serves every sample."""
        view, g = self._view(before), self._view(grad)
        if self.first == 0:  # out = v @ M^T
            if matrix.dim() == 2:
                return g.reshape(-1, g.shape[-1]).mT @ view.reshape(-1, view.shape[-1]).conj()
            return g.mT @ view.conj()
        result = g @ view.mH
        if view.dim() == 4:
            result = result.sum(1)
        return result.sum(0) if matrix.dim() == 2 else result


def run_steps(steps, const: dict, state: torch.Tensor, params) -> torch.Tensor:
    for step, param in zip(steps, params):
        state = step.apply(state, param, const)
    return state


class AdjointRun(torch.autograd.Function):
    """The steps run forward without autograd, keeping only the final state. Backward
    walks the circuit back, undoing each step on the state (every step is unitary)
    while it carries the loss's gradient: memory holds a few states whatever the
    depth, where autograd would keep one per step."""

    @staticmethod
    def forward(ctx, steps, const, state, *params):
        final = run_steps(steps, const, state, params)  # autograd is off in a Function's forward
        ctx.steps, ctx.const = steps, const
        ctx.save_for_backward(final, *(p for p in params if p is not None))
        ctx.present = [p is not None for p in params]
        return final

    @staticmethod
    def backward(ctx, grad):
        final, *saved = ctx.saved_tensors
        saved = iter(saved)
        params = [next(saved) if present else None for present in ctx.present]
        grads: list[torch.Tensor | None] = [None] * len(params)
        state = final
        for i in reversed(range(len(ctx.steps))):
            step, param = ctx.steps[i], params[i]
            state = step.undo(state, param, ctx.const)
            if param is not None and ctx.needs_input_grad[3 + i]:
                if isinstance(step, BlockStep):
                    grads[i] = step.matrix_grad(state, grad, param)
                else:
                    grads[i] = step.angle_grad(state, grad, param, ctx.const)
            grad = step.undo(grad, param, ctx.const)
        return None, None, grad if ctx.needs_input_grad[2] else None, *grads
