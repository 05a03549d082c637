"""The run description: what qtrain's runner reads of a composed config, checked and typed.
Below qtrain.config nothing indexes the raw config: the runner reads these fields and
hands the `_target_` nodes to `hydra.utils.instantiate`."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from qtrain.config.checks import check_config
from qtrain.config.schema import Hardware, Stage, Trainer, flatten, plain_values


@dataclass(frozen=True)
class RunConfig:
    seed: int
    train: bool  # false: evaluate ckpt_path only
    test: bool
    export: bool
    ckpt_path: str | None  # resume (train=true) or evaluate (train=false)
    init_from: str | None  # a checkpoint whose weights start a new run
    objective: str  # the metric returned to a sweeper
    trainer: Trainer
    hardware: Hardware
    stages: dict[str, Stage]  # the stages to run, in order (a stage set to null is left out)
    # The `_target_` nodes, for hydra.utils.instantiate (tracking: one per tracker).
    task: DictConfig
    dataset: DictConfig
    model: DictConfig
    optimizer: DictConfig
    scheduler: DictConfig
    tracking: tuple[DictConfig, ...]
    values: dict  # the whole config as plain values: checkpoints, model_info.json, trackers

    @property
    def params(self) -> dict[str, object]:
        """`values` as dotted keys: {"model.quantum.n_qubits": 6, ...}."""
        return flatten(self.values)

    def value(self, key: str, default=None):
        """One of `values` by its dotted key (`dataset.name`), or `default`."""
        return self.params.get(key, default)


def describe(cfg: DictConfig) -> RunConfig:
    """The checked run description of a composed config; a mistake raises ConfigError."""
    check_config(cfg)
    values = plain_values(cfg)
    return RunConfig(
        seed=cfg.seed,
        train=cfg.train,
        test=cfg.test,
        export=cfg.export,
        ckpt_path=cfg.ckpt_path,
        init_from=cfg.init_from,
        objective=cfg.objective,
        trainer=OmegaConf.to_object(cfg.trainer),
        hardware=OmegaConf.to_object(cfg.hardware),
        stages=stage_settings(values["stages"]),
        task=cfg.task,
        dataset=cfg.dataset,
        model=cfg.model,
        optimizer=cfg.optimizer,
        scheduler=cfg.scheduler,
        tracking=tuple(cfg.tracking.values()),
        values=values,
    )


def stage_settings(stages: dict | DictConfig) -> dict[str, Stage]:
    """Each stage's settings, typed, from plain values (a run's, or a checkpoint's)."""
    schema = OmegaConf.structured(Stage)
    return {
        name: OmegaConf.to_object(OmegaConf.merge(schema, settings))
        for name, settings in stages.items()
        if settings is not None
    }
