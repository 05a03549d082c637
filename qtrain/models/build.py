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


def check_circuit(model: DictConfig, train: bool, eval_batches: int | None) -> None:
    """The model's circuit (`model.quantum`), refused in its keys before anything runs: what
    its backend cannot take, and a real device's evaluation without a cap on its jobs."""
    from qtrain.quantum.backends import check_run  # qiskit loads for a run, not for `--help`
    from qtrain.quantum.noise import device_names

    node = model.get("quantum") if isinstance(model, DictConfig) else None
    if not isinstance(node, DictConfig) or "backend" not in node:
        return
    with config_keys("model.quantum"):
        chosen, spec = check_run(node, train)
    if chosen.hardware and spec["device"] not in device_names() and eval_batches is None:
        raise ConfigError(
            "trainer.limit_eval_batches", None, "caps the batches sent to the device (each is a job): set it"
        )
