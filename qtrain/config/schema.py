"""Typed shapes: the trainer, the hardware, a stage, the quantum spec (in Hydra's
ConfigStore as `schema/<name>`, extended by the YAML files, which hold the defaults), so
composition refuses an unknown key, a wrong type or choice before any job starts; and
the run description. Choices are spelled out (the parts' tables would load torch before
`--help`; tests/config/test_config.py keeps them equal); the quantum backend is a name
in a registry (qtrain.quantum.backends), refused by the layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from qtrain.errors import ConfigError

# ruff: noqa: UP007, UP045  (OmegaConf needs typing.Optional, not `X | None`, on Python 3.10)


class Choice(str, Enum):
    """A choice: compares, hashes, prints and formats as its name, a plain string."""

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
class Noise:  # all null: ideal; qtrain.quantum.noise checks the values (devices, probabilities)
    device: Optional[str] = None  # a qiskit-ibm-runtime fake device (or, with backend=ibm, a real one)
    depolarizing: Optional[list[Number]] = None  # [p1, p2]
    readout: Any = None  # p, or [p(1|0), p(0|1)]
    method: str = "auto"  # auto, density_matrix, trajectories
    trajectories: int = 256  # samples per input of the trajectories method


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
    noise: Optional[Noise] = MISSING  # null: ideal, as are all its keys null
    dtype: Dtype = MISSING
    seed: Optional[int] = MISSING


@dataclass(frozen=True)
class RunConfig:
    """The run description (qtrain.config.describe): the runner reads these fields and hands
    the parts' nodes to hydra.utils.instantiate; nothing below qtrain.config reads the raw config."""

    seed: int
    train: bool  # false: evaluate ckpt_path only
    test: bool
    ckpt_path: Optional[str]  # resume (train=true) or evaluate (train=false)
    init_from: Optional[str]  # a checkpoint whose weights start a new run
    export: bool
    objective: str  # the metric returned to a sweeper
    tracking: DictConfig  # one node per tracker, for hydra.utils.instantiate; and the parts:
    task: DictConfig
    dataset: DictConfig
    encoder: Optional[DictConfig]  # a hybrid model's (model.encoder reads it)
    model: DictConfig
    optimizer: DictConfig
    scheduler: DictConfig
    stages: dict[str, Stage]  # the stages to run, in order (a stage set to null is left out)
    trainer: Trainer
    hardware: Hardware
    values: dict  # the whole config as plain values: checkpoints, model_info.json, trackers


SCHEMAS = {  # what each schema's keys are, in a refusal of an unknown one
    Trainer: "a trainer setting",
    Hardware: "a hardware setting",
    Stage: "a stage setting",
    Quantum: "an argument of qtrain.quantum.layer.QuantumLayer",
    Noise: "a noise setting (docs/noise.md)",
}
TYPES = {int: "an integer", Number: "a number", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}  # fmt: skip

UNKNOWN_KEY = (ConfigKeyError, ConfigAttributeError)  # `+key=` / `key=` (OmegaConf's two words for it)
for schema in SCHEMAS:
    ConfigStore.instance().store(group="schema", name=schema.__name__.lower(), node=schema)


@contextlib.contextmanager
def schema_errors_in_a_line(overrides: Sequence[str]) -> Iterator[None]:
    """Composing with `overrides` inside: a schema's refusal of one of them comes out as
    qtrain's one line, `key=value: what is accepted`; any other error (a preset's value:
    Hydra's message names the file) as it is."""
    try:
        yield
    except ConfigCompositionException as error:
        cause = error.__cause__
        schema, key = getattr(cause, "object_type", None), getattr(cause, "full_key", None)
        given = {
            o.key_or_group: o.input_line.split("=", 1)[1] for o in OverridesParser.create().parse_overrides(overrides)
        }
        if schema not in SCHEMAS or key not in given or not isinstance(cause, (*UNKNOWN_KEY, ValidationError)):
            raise
        if isinstance(cause, UNKNOWN_KEY):
            raise ConfigError.unknown_key(key, given[key], schema_keys(schema), SCHEMAS[schema]) from None
        raise ConfigError(key, given[key], _accepted(get_type_hints(schema)[cause.key])) from None


def _accepted(hint) -> str:
    optional = type(None) in get_args(hint)
    kind = Union[tuple(t for t in get_args(hint) if t is not type(None))] if optional else hint
    if isinstance(kind, type) and issubclass(kind, Choice):
        names = [member.value for member in kind]
        return f"use null, {', '.join(names[:-1])} or {names[-1]}" if optional else f"use one of {', '.join(names)}"
    wanted = TYPES.get(kind) or TYPES.get(get_origin(kind), "of another type")
    return f"must be {wanted} or null" if optional else f"must be {wanted}"


def plain_values(node: DictConfig) -> dict:
    """A node as plain Python, as checkpoints and trackers keep it: resolved, choices as
    their names (a Choice member in a checkpoint would not load with weights_only)."""
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in config.items():
        flat |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def schema_keys(schema: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(schema))
