"""The protocols of what the trainer asks of a model (qtrain.engine.trainable) tell a
model from what is not one; tests/config/test_config.py holds every model of conf/model
to them."""

from __future__ import annotations

from torch import nn

from qtrain.engine.trainable import HeadedModel, TrainableModel


def test_a_module_without_the_trainers_needs_is_not_trainable():
    class NotAModule:
        def forward(self, x):
            return x

    assert not isinstance(NotAModule(), TrainableModel)
    assert isinstance(nn.Linear(2, 2), TrainableModel) and not isinstance(nn.Linear(2, 2), HeadedModel)
