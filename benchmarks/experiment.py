"""The experiment a benchmark measures: composed and built as `python -m qtrain <overrides>` would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig

from qtrain import TRUSTED_TARGETS

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF)):
        return compose("config", overrides=[*overrides, "tracking=none"])


def build(node: DictConfig):
    """The object a config node describes, under qtrain's execution whitelist."""
    with execution_whitelist(TRUSTED_TARGETS):
        return instantiate(node)
