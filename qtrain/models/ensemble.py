"""The staged hybrid: encoder -> compression -> named heads (two classical, one
quantum) -> an ensemble with learned weights over the active heads.

`forward` returns every head's logits and the ensemble's, by name, so the loss and
the metrics can weigh and report each one; stages choose which heads are active.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qtrain.models.hybrid import QuantumHead


class Ensemble(nn.Module):
    """Weights over heads (a softmax over the active ones) applied to their log-probabilities:
    the ensemble's logits. A masked head contributes nothing."""

    def __init__(self, heads: list[str]):
        super().__init__()
        self.heads = heads
        self.logits = nn.Parameter(torch.zeros(len(heads)))

    def weights(self, active: list[str]) -> dict[str, torch.Tensor]:
        index = torch.tensor([self.heads.index(name) for name in active], device=self.logits.device)
        return dict(zip(active, torch.softmax(self.logits[index], dim=0)))

    def forward(self, outputs: dict[str, torch.Tensor], active: list[str]) -> torch.Tensor:
        weights = self.weights(active)
        return sum(weight * torch.log_softmax(outputs[name], dim=1) for name, weight in weights.items())


class HybridEnsemble(nn.Module):
    def __init__(
        self,
        encoder: nn.Module | None,
        num_classes: int,
        quantum: dict,
        compressed_features: int = 16,
        mlp_hidden: int = 64,
        input_scale: float = math.pi / 2,
    ):
        super().__init__()
        self.encoder = encoder  # None: the inputs are already compressed features (dataset=features)
        if encoder is None:
            self.compression = nn.Identity()
        else:
            self.compression = nn.Sequential(
                nn.Linear(encoder.num_features, compressed_features), nn.BatchNorm1d(compressed_features), nn.ReLU()
            )
        self.heads = nn.ModuleDict(
            {
                "classical_a": nn.Linear(compressed_features, num_classes),
                "classical_b": nn.Sequential(
                    nn.Linear(compressed_features, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, num_classes)
                ),
                "quantum": QuantumHead(compressed_features, num_classes, dict(quantum), input_scale),
            }
        )
        self.ensemble = Ensemble(list(self.heads))
        self.active_heads = list(self.heads)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the heads see: the compression of the encoder's features."""
        return self.compression(x if self.encoder is None else self.encoder(x))

    def classify(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = {name: head(features) for name, head in self.heads.items()}
        outputs["ensemble"] = self.ensemble(outputs, self.active_heads)
        return outputs

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.classify(self.features(x))

    def ensemble_weights(self) -> dict[str, float]:
        """The ensemble's weight of each head (0 for masked heads), for the history."""
        with torch.no_grad():
            active = self.ensemble.weights(self.active_heads)
        return {name: float(active[name]) if name in active else 0.0 for name in self.heads}
