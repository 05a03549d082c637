"""Gate angles as torch code: qiskit ParameterExpressions (e.g. the ZZ map's
2(pi - x_i)(pi - x_j)) turned into one torch function through sympy, once."""

from __future__ import annotations

import sympy
import torch
from qiskit.circuit import ParameterExpression

TORCH_FUNCTIONS = {"sin": torch.sin, "cos": torch.cos, "exp": torch.exp, "sqrt": torch.sqrt, "tan": torch.tan}


class Angles:
    """Angles (ParameterExpressions or numbers) evaluated together on (x, w), one row
    per sample: (batch, n)."""

    def __init__(self, input_params, weight_params):
        self.xs = [sympy.Symbol(f"x{i}") for i in range(len(input_params))]
        self.ws = [sympy.Symbol(f"w{i}") for i in range(len(weight_params))]
        self.symbols = dict(zip([p.name for p in input_params], self.xs))
        self.symbols |= dict(zip([p.name for p in weight_params], self.ws))
        self.expressions: list = []

    def reads_inputs(self, angle) -> bool:
        names = {p.name for p in angle.parameters} if isinstance(angle, ParameterExpression) else set()
        return any(self.symbols[name] in self.xs for name in names)

    def add(self, angle) -> int:
        self.expressions.append(self._sympy(angle))
        return len(self.expressions) - 1

    def compile(self):
        """A function (x (B, n_in), w (n_w,)) -> angles (B, n); None if empty."""
        if not self.expressions:
            return None
        if all(isinstance(e, sympy.Symbol) for e in self.expressions):
            return self._gather()
        function = sympy.lambdify([self.xs, self.ws], self.expressions, modules=[TORCH_FUNCTIONS, "math"])

        def evaluate(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            values = function(list(x.T), list(w))
            like = x.new_ones(x.shape[0])
            return torch.stack([value * like for value in values], dim=-1)

        return evaluate

    def _gather(self):
        """Angles that are each one input or weight (RealAmplitudes, angle encodings): one
        gather instead of an op per angle, which small circuits would pay for."""
        names = [*self.xs, *self.ws]
        index = torch.tensor([names.index(e) for e in self.expressions])

        def evaluate(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, w.expand(x.shape[0], -1)], dim=1).index_select(1, index.to(x.device))

        return evaluate

    def _sympy(self, angle):
        if not isinstance(angle, ParameterExpression):
            return sympy.Float(float(angle))
        expr = angle.sympify()
        return expr.subs({s: self.symbols[s.name] for s in expr.free_symbols})
