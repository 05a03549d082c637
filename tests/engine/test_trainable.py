"""Every model of conf/model is what the trainer asks for (qtrain.engine.trainable), and
a model with named heads is a HeadedModel: the stages' head masks, cached features and
logged ensemble weights rely on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import execution_whitelist
from torch import nn

import qtrain
from qtrain.engine.trainable import HeadedModel, TrainableModel
from qtrain.models.build import build

MODELS = sorted(p.stem for p in (Path(qtrain.CONFIG_DIR) / "model").glob("*.yaml"))
NEEDS = {"ensemble_heads": ["dataset=features", "dataset.path=/tmp/features.pt"], "lstm_signal": ["dataset=signal"]}


@pytest.mark.parametrize("name", MODELS)
def test_every_model_is_a_trainable_model_and_heads_make_a_headed_one(name, make_config):
    cfg = make_config(f"model={name}", *NEEDS.get(name, []))
    with execution_whitelist(qtrain.TRUSTED_TARGETS):
        model = build(cfg.model)
    assert isinstance(model, TrainableModel)
    has_heads = isinstance(getattr(model, "heads", None), nn.ModuleDict)
    assert isinstance(model, HeadedModel) == has_heads
    if has_heads:
        assert model.active_heads == list(model.heads) and set(model.ensemble_weights()) == set(model.heads)


def test_a_module_without_the_trainers_needs_is_not_trainable():
    class NotAModule:
        def forward(self, x):
            return x

    assert not isinstance(NotAModule(), TrainableModel)
    assert not isinstance(nn.Linear(2, 2), HeadedModel)
