"""What the trainer asks of a model, declared: every model is a TrainableModel; a model
with named heads (the ensembles) is also a HeadedModel. tests/config/test_config.py
holds every model of conf/model to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class TrainableModel(Protocol):
    """A torch module mapping a batch of inputs to one output tensor or, with named heads,
    a dict of each head's output and "ensemble". Its top-level children are the units a
    stage trains or freezes (a `heads` ModuleDict counts head by head)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]: ...

    def named_children(self) -> Iterator[tuple[str, nn.Module]]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self, *args, **kwargs) -> dict: ...

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False): ...


@runtime_checkable
class HeadedModel(TrainableModel, Protocol):
    """Named heads under one ensemble: a stage chooses the heads that feed the ensemble
    (`active_heads`), may train the heads alone on cached `features`, and the trainer
    logs the ensemble's weights each epoch."""

    heads: nn.ModuleDict
    active_heads: list[str]

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def classify(self, features: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def ensemble_weights(self) -> dict[str, float]: ...
