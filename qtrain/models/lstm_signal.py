"""An LSTM that extracts one component of a mixed signal, step by step.

Input at each time step: the mixed signal's value and the one-hot condition that
names the component to extract; output: that component's value at the step.

Two modes, the same weights and the same outputs:
- `sequence`: the whole sequence through `nn.LSTM` in one call (fast; gradients flow
  through time).
- `stateful`: one time step per call (sequence length 1), the hidden state carried
  from step to step and detached after each (no gradient through time, constant
  memory over any length); every sample starts from a zero state, so nothing is
  carried between samples.
"""

from __future__ import annotations

import torch
from torch import nn

from qtrain.errors import ArgumentError

MODES = ("sequence", "stateful")


class LSTMSignal(nn.Module):
    def __init__(
        self,
        num_conditions: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        mode: str = "sequence",
    ):
        super().__init__()
        if mode not in MODES:
            raise ArgumentError("mode", mode, f"use one of {', '.join(MODES)}")
        self.mode = mode
        self.lstm = nn.LSTM(
            input_size=1 + num_conditions,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.readout = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, 1 + conditions) -> (batch, time)."""
        hidden = self._stateful(x) if self.mode == "stateful" else self.lstm(x)[0]
        return self.readout(hidden).squeeze(-1)

    def _stateful(self, x: torch.Tensor) -> torch.Tensor:
        state = None  # zeros: a fresh state for every sample of the batch
        steps = []
        for t in range(x.shape[1]):
            out, state = self.lstm(x[:, t : t + 1], state)
            state = tuple(s.detach() for s in state)
            steps.append(out)
        return torch.cat(steps, dim=1)
