"""Stages: each stage's settings, checked against the model before anything trains,
and applied to it (what trains, which heads feed the ensemble, how the loss weighs them).

A model's trainable units are its top-level modules, with a `heads` ModuleDict split
into its heads: `encoder`, `compression`, `classical_a`, `classical_b`, `quantum`,
`ensemble` for the hybrid ensemble; `features`, `classifier` for the small CNN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from qtrain.engine.trainable import HeadedModel
from qtrain.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    name: str
    epochs: int
    lr: float
    weight_decay: float | None
    patience: int | None
    trainable: tuple[str, ...]
    active_heads: tuple[str, ...]
    loss_weights: dict[str, float]  # per head and "ensemble"; empty for single-output models
    cache_features: bool


def units(model: nn.Module) -> dict[str, nn.Module]:
    found = {}
    for name, child in model.named_children():
        found |= dict(child.items()) if isinstance(child, nn.ModuleDict) else {name: child}
    return found


def heads(model: nn.Module) -> list[str]:
    return list(model.heads) if isinstance(model, HeadedModel) else []


def plan_stages(stages: dict, model: nn.Module) -> list[Stage]:
    """Every stage (qtrain.config.schema.Stage settings, by name, in order), checked
    against `model`: refused here, before training starts."""
    return [_plan(name, settings, model) for name, settings in stages.items()]


def _names(key: str, given, valid: list[str], what: str) -> tuple[str, ...]:
    names = tuple(given)
    if not names:
        raise ConfigError(key, "[]", f"an empty list; name {what} from {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ConfigError(key, unknown[0], f"the model has no such {what}; it has {', '.join(valid)}")
    return names


def _plan(name: str, settings, model: nn.Module) -> Stage:
    key = f"stages.{name}"
    all_units, all_heads = list(units(model)), heads(model)
    trainable = settings.trainable
    trainable = tuple(all_units) if trainable is None else _names(f"{key}.trainable", trainable, all_units, "module")
    active = settings.active_heads
    if active is not None and not all_heads:
        raise ConfigError(f"{key}.active_heads", list(active), "this model has one output, no named heads")
    active = tuple(all_heads) if active is None else _names(f"{key}.active_heads", active, all_heads, "head")
    weights = _loss_weights(key, settings.loss_weights, all_heads, active)
    stage = Stage(
        name=name,
        epochs=settings.epochs,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        patience=settings.patience,
        trainable=trainable,
        active_heads=active,
        loss_weights=weights,
        cache_features=settings.cache_features,
    )
    if len(unreached_units(stage, model)) == len(trainable):
        raise ConfigError(
            f"{key}.trainable",
            list(trainable),
            f"trains nothing: no output with a loss weight > 0 depends on it (loss_weights {weights})",
        )
    if stage.cache_features:
        _check_cacheable(key, stage, model, all_heads)
    return stage


def _loss_weights(key: str, given, all_heads: list[str], active: tuple[str, ...]) -> dict[str, float]:
    """Defaults: the ensemble and each active head 1, a masked head 0."""
    if not all_heads:
        if given:
            raise ConfigError(f"{key}.loss_weights", dict(given), "this model has one output, no named heads")
        return {}
    weights = {"ensemble": 1.0} | {head: float(head in active) for head in all_heads}
    for output, weight in (given or {}).items():
        if output not in weights:
            raise ConfigError(f"{key}.loss_weights.{output}", weight, f"not an output; use {', '.join(weights)}")
        weights[output] = float(weight)
    return weights


def _gets_gradient(unit: str, stage: Stage, all_heads: list[str]) -> bool:
    weights = stage.loss_weights
    if not weights:  # one output: every unit is on its path
        return True
    ensemble = weights["ensemble"] > 0
    if unit == "ensemble":  # a softmax over one head is constant
        return ensemble and len(stage.active_heads) > 1
    if unit in all_heads:
        return weights[unit] > 0 or (ensemble and unit in stage.active_heads)
    return any(weights[h] > 0 for h in all_heads) or (ensemble and bool(stage.active_heads))


def trained_heads(stages: list[Stage], model: nn.Module) -> list[str]:
    """The heads some stage trains: the others keep their initial weights, and their
    scores would read as results."""
    all_heads = heads(model)
    return [h for h in all_heads if any(h in s.trainable and _gets_gradient(h, s, all_heads) for s in stages)]


def unreached_units(stage: Stage, model: nn.Module) -> list[str]:
    """The stage's trainable units that no loss term depends on (a masked head at loss
    weight 0): they get no gradient, which DistributedDataParallel must be told."""
    return [unit for unit in stage.trainable if not _gets_gradient(unit, stage, heads(model))]


def _check_cacheable(key: str, stage: Stage, model: nn.Module, all_heads: list[str]) -> None:
    below_heads = [u for u in units(model) if u not in all_heads and u != "ensemble"]
    trained = [u for u in below_heads if u in stage.trainable]
    if not isinstance(model, HeadedModel) or trained:
        raise ConfigError(
            f"{key}.cache_features",
            True,
            f"needs everything below the heads frozen ({', '.join(below_heads) or 'no feature extractor'}); "
            f"trainable here: {', '.join(trained) or 'none'}",
        )


def apply_stage(model: nn.Module, stage: Stage) -> list[nn.Module]:
    """Freeze every unit the stage does not train; set the ensemble's heads. Returns the
    frozen units, which also stay in eval mode (batch-norm statistics frozen too)."""
    frozen = []
    for name, unit in units(model).items():
        unit.requires_grad_(name in stage.trainable)
        if name not in stage.trainable:
            frozen.append(unit)
    if heads(model):
        model.active_heads = list(stage.active_heads)
    return frozen


class StageLoss:
    """The task's loss of a model's output; for named outputs, the stage's weighted sum.
    Returns the loss and the output the metrics judge (the ensemble's)."""

    def __init__(self, loss_weights: dict[str, float], loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.weights = {k: w for k, w in loss_weights.items() if w > 0}
        self.loss = loss

    def __call__(self, output, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(output, torch.Tensor):
            return self.loss(output, target), output
        loss = sum(w * self.loss(output[k], target) for k, w in self.weights.items())
        return loss, output["ensemble"]


class HeadsOnly(nn.Module):
    """The model above its cached features: a stage with `cache_features` trains this."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor):
        return self.model.classify(features)
