"""`train=false ckpt_path=<run>/checkpoints/best.pt`: evaluate the experiment the checkpoint
stores, whatever the defaults say. It is composed from a primary config in Hydra's
ConfigStore: conf/config.yaml without the experiment's groups, then the checkpoint's
values, then the command line (a key replaces a value, a group a whole part). How and
where it runs (hardware, tracking, trainer, test, export) is this invocation's. The
command line's job runs it and records it in `.hydra/config.yaml`, as `qtrain.compose` returns it."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

EXPERIMENT_GROUPS = ("task", "dataset", "encoder", "model", "optimizer", "scheduler", "stages")
# Not the experiment's (a resume may change fewer: qtrain.engine.resume.PER_INVOCATION).
PER_INVOCATION = ("hardware", "tracking", "trainer", "train", "test", "ckpt_path", "init_from", "export", "debug")
NAME = "qtrain_checkpoint"


def checkpoint_experiment(cfg: DictConfig, overrides: list[str], **compose_options) -> DictConfig | None:
    """For `train=false ckpt_path=<readable checkpoint>`, the checkpoint's experiment composed
    with `overrides`; None otherwise (an unreadable checkpoint: the run refuses it)."""
    if cfg.train or not cfg.ckpt_path:
        return None
    from qtrain.engine.checkpoint import FORMAT, upgraded  # torch loads only for an evaluation (fast --help)
    from qtrain.files import load_tagged

    try:
        saved = upgraded(load_tagged(Path(cfg.ckpt_path).expanduser(), FORMAT, "checkpoint")["config"])
    except (OSError, ValueError, KeyError):
        return None
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    switched = [group for group in EXPERIMENT_GROUPS if group in given]
    values = {key: value for key, value in saved.items() if key not in (*PER_INVOCATION, *switched)}
    # The task decides what is monitored; the rest of `trainer` is this invocation's.
    values["trainer"] = {"monitor": saved["trainer"]["monitor"]}
    left_out = [{f"override {group}": None} for group in EXPERIMENT_GROUPS if group not in switched]
    node = {"defaults": ["config", *left_out, "_self_"], **values}
    ConfigStore.instance().store(name=NAME, node=node, replace=True)  # one per checkpoint evaluated
    return compose(NAME, overrides=overrides, **compose_options)
