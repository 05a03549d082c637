"""The experiment a benchmark measures: composed and built as `python -m qtrain <overrides>` would."""

from __future__ import annotations

from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig

import qtrain


def compose_config(*overrides: str) -> DictConfig:
    return qtrain.compose([*overrides, "tracking=none"])


def build(node: DictConfig):
    """The object a config node describes, under qtrain's execution whitelist."""
    with execution_whitelist(qtrain.TRUSTED_TARGETS):
        return instantiate(node)
