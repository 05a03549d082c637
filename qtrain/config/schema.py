"""Typed shapes of the config groups whose keys are fixed: the trainer, the hardware, a
stage and the quantum spec. They are registered in Hydra's ConfigStore as
`schema/<name>` and the YAML files extend them (`defaults: [/schema/hardware@_here_]`),
so composition refuses an unknown key, a value of the wrong type or a choice not in
the list, on the command line, in a preset or in a sweep, before any job starts.
`schema_error` says a command-line value's refusal in qtrain's one line; a YAML file's
keeps Hydra's message, which names the file (Hydra keeps no structured cause for it).
Ranges and rules across groups are qtrain.config.checks'; the defaults stay in the YAML
files, the one place a user reads them. The run reads these dataclasses themselves
(qtrain.config.describe), not the raw config.

The choices are the names qtrain's parts accept; tests/config/test_schema.py checks
that they match the parts' own tables (importing those here would load torch and
qiskit before `--help`). The quantum backends are a registry
(qtrain.quantum.backends): a string here, refused by the layer with the registered names."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from qtrain.errors import ConfigError

# OmegaConf needs typing.Optional in schema annotations, not `X | None` (Python 3.10).
# ruff: noqa: UP007, UP045


class Choice(str, Enum):
    """A config choice: compares, hashes, prints and formats as its name, a plain string."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def _choices(name: str, values: str) -> type[Choice]:
    return Choice(name, [(value, value) for value in values.split()])


Amp = _choices("Amp", "auto bf16 fp16")
ProcessBackend = _choices("ProcessBackend", "auto gloo nccl")
MonitorMode = _choices("MonitorMode", "max min")
FeatureMap = _choices("FeatureMap", "zz z angle_ry angle_rx")
Ansatz = _choices("Ansatz", "real_amplitudes efficient_su2")
Entanglement = _choices("Entanglement", "linear circular full")
Dtype = _choices("Dtype", "float32 float64")


# A number as written: 0 stays 0, as the user typed it (a float field would make it 0.0).
Number = Union[int, float]


@dataclass
class Trainer:
    monitor: str = MISSING  # the metric that picks best.pt and drives early stopping
    monitor_mode: MonitorMode = MISSING
    grad_clip_norm: Optional[Number] = MISSING
    accumulate_batches: int = MISSING
    keep_epoch_checkpoints: int = MISSING
    limit_epochs: Optional[int] = MISSING
    limit_train_batches: Optional[int] = MISSING
    overfit_batches: Optional[int] = MISSING
    limit_eval_batches: Optional[int] = MISSING
    progress: bool = MISSING

    def epochs(self, planned: int) -> int:
        """A stage's epochs: as planned, capped by limit_epochs."""
        return planned if self.limit_epochs is None else min(planned, self.limit_epochs)


@dataclass
class Hardware:
    device: str = MISSING  # auto, cpu, cuda or cuda:N (qtrain.engine.hardware.resolve_device)
    amp: Optional[Amp] = MISSING
    distributed: bool = MISSING
    backend: ProcessBackend = MISSING
    num_workers: int = MISSING
    pin_memory: bool = MISSING
    persistent_workers: bool = MISSING
    deterministic: bool = MISSING
    compile: bool = MISSING
    channels_last: bool = MISSING
    cudnn_benchmark: bool = MISSING
    tf32: bool = MISSING
    profile: bool = MISSING
    profile_steps: int = MISSING


@dataclass
class Stage:
    epochs: int = MISSING
    lr: Number = MISSING
    weight_decay: Optional[Number] = MISSING
    patience: Optional[int] = MISSING
    trainable: Optional[list[str]] = MISSING
    active_heads: Optional[list[str]] = MISSING
    loss_weights: Optional[dict[str, Number]] = MISSING
    cache_features: bool = MISSING


@dataclass
class Quantum:
    n_qubits: int = MISSING
    feature_map: FeatureMap = MISSING
    feature_map_reps: int = MISSING
    ansatz: Ansatz = MISSING
    reps: int = MISSING
    entanglement: Entanglement = MISSING
    reupload: int = MISSING
    observables: Any = MISSING  # z, zz, or a list of Pauli strings
    backend: str = MISSING  # a name registered in qtrain.quantum.backends
    shots: Optional[int] = MISSING
    noise: Optional[dict[str, Any]] = MISSING
    dtype: Dtype = MISSING
    seed: Optional[int] = MISSING


# What each schema's keys are, in a refusal of an unknown one.
SCHEMAS = {
    Trainer: "a trainer setting",
    Hardware: "a hardware setting",
    Stage: "a stage setting",
    Quantum: "an argument of qtrain.quantum.layer.QuantumLayer",
}
TYPES = {
    int: "an integer",
    Number: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}

UNKNOWN_KEY = (ConfigKeyError, ConfigAttributeError)  # `+key=` / `key=` (OmegaConf's two words for it)

for schema in SCHEMAS:
    ConfigStore.instance().store(group="schema", name=schema.__name__.lower(), node=schema)


@contextlib.contextmanager
def schema_errors_in_a_line() -> Iterator[None]:
    """Composition inside: a schema's refusal comes out as a ConfigError."""
    try:
        yield
    except ConfigCompositionException as error:
        refusal = schema_error(error)
        if refusal is None:
            raise
        raise refusal from None


def schema_error(error: ConfigCompositionException) -> ConfigError | None:
    """A schema's refusal of a command-line override as qtrain's one line (`key=value:
    what is accepted`); None for any other composition error."""
    cause = error.__cause__
    schema = getattr(cause, "object_type", None)
    if schema not in SCHEMAS or not cause.full_key or not isinstance(cause, (*UNKNOWN_KEY, ValidationError)):
        return None
    key = cause.full_key
    given = re.search(rf"{re.escape(key)}=(\S*)", str(error))  # Hydra names the override it could not apply
    if given is None:
        return None
    value = given.group(1)
    if isinstance(cause, UNKNOWN_KEY):
        return ConfigError.unknown_key(key, value, schema_keys(schema), SCHEMAS[schema])
    return ConfigError(key, value, _accepted(get_type_hints(schema)[cause.key]))


def _accepted(hint) -> str:
    optional = type(None) in get_args(hint)
    kind = Union[tuple(t for t in get_args(hint) if t is not type(None))] if optional else hint
    if isinstance(kind, type) and issubclass(kind, Choice):
        names = [member.value for member in kind]
        return f"use null, {', '.join(names[:-1])} or {names[-1]}" if optional else f"use one of {', '.join(names)}"
    wanted = TYPES.get(kind) or TYPES.get(get_origin(kind), "of another type")
    return f"must be {wanted} or null" if optional else f"must be {wanted}"


def plain_values(node: DictConfig) -> dict:
    """A config node as plain Python, as checkpoints, model_info.json, MLflow and
    TensorBoard keep it: interpolations resolved, each schema choice as its name (a
    Choice member in a checkpoint would not load with weights_only)."""
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def schema_keys(schema: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(schema))
