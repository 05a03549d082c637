"""Hybrid classifier: a classical encoder, a compression to the circuit's inputs, a
quantum head, and a linear map from its expectation values to the classes."""

from __future__ import annotations

import math

import torch
from torch import nn

from qtrain.errors import ArgumentError
from qtrain.quantum.layer import QuantumLayer


class QuantumHead(nn.Module):
    """features -> Linear -> input_scale * tanh (bounded rotation angles) -> QuantumLayer
    -> BatchNorm -> Linear to classes. `quantum` holds QuantumLayer's arguments; its
    refusals name them as `quantum.<argument>`."""

    def __init__(self, in_features: int, num_classes: int, quantum: dict, input_scale: float = math.pi / 2):
        super().__init__()
        try:
            self.quantum = QuantumLayer(**quantum)
        except ArgumentError as error:
            raise error.within("quantum") from None
        self.compress = nn.Linear(in_features, len(self.quantum.input_params))
        self.input_scale = input_scale
        # Expectation values live in [-1, 1] and often in a narrow band of it; batch norm
        # rescales them so the classifier does not spend its first epochs growing weights.
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(self.quantum.n_outputs), nn.Linear(self.quantum.n_outputs, num_classes)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        angles = self.input_scale * torch.tanh(self.compress(features))
        try:
            values = self.quantum(angles)
        except ArgumentError as error:  # a batch too large for the circuit's width
            raise error.within("quantum") from None
        return self.classifier(values)


class HybridClassifier(nn.Module):
    """`encoder` is any module mapping images to (batch, encoder.num_features), e.g. a
    timm model or SimpleCNN built with num_classes=0."""

    def __init__(self, encoder: nn.Module, num_classes: int, quantum: dict, input_scale: float = math.pi / 2):
        super().__init__()
        self.encoder = encoder
        self.head = QuantumHead(encoder.num_features, num_classes, dict(quantum), input_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
