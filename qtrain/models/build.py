"""A model built from its config node, its refusals said in config keys: a part raises
ArgumentError naming its own argument (`patch_size=5`); the app names the key the user
sets (`encoder.patch_size=5`) and exits with one line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig

from qtrain.errors import ArgumentError, ConfigError

FULL_KEY = "full_key: "  # the note Hydra's instantiate adds to an error: the node it was building


def build(node: DictConfig):
    """`instantiate(node)`; an ArgumentError is named under the node that raised it
    (a model's encoder is built from the `encoder` group, so its keys are `encoder.*`)."""
    try:
        return instantiate(node)
    except ArgumentError as error:
        notes = [n[len(FULL_KEY) :] for n in getattr(error, "__notes__", ()) if n.startswith(FULL_KEY)]
        raise _config_error(error, notes[0] if notes else node._get_full_key(None)) from None


@contextlib.contextmanager
def config_keys(key: str) -> Iterator[None]:
    """Name an ArgumentError raised while the part built from `key` runs (a batch too
    large for the circuit's width) under that key."""
    try:
        yield
    except ArgumentError as error:
        raise _config_error(error, key) from None


def _config_error(error: ArgumentError, key: str) -> ConfigError:
    return ConfigError(f"{key}.{error.argument}", error.value, error.accepted)
