"""`train=false ckpt_path=<run>/checkpoints/best.pt`: evaluate the experiment the checkpoint
stores, whatever the defaults say.

A checkpoint keeps its run's resolved config. For an evaluation, Hydra composes a primary
config written here: conf/config.yaml with the groups of the experiment left out, then the
checkpoint's values. The command line still wins: a key (`dataset.root=/data`,
`model.quantum.backend=aer`) replaces that value, a group (`dataset=fashion_mnist`)
replaces that whole part. How and where it runs (hardware, tracking, trainer settings,
test, export) comes from the command line and the defaults, as for any run.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from qtrain import CONFIG_DIR

# The groups that make up what a model learned, each at the top-level key of its name.
EXPERIMENT_GROUPS = ("task", "dataset", "encoder", "model", "optimizer", "scheduler", "stages")
# Keys of a run's config that belong to the invocation, not to the experiment (a resume may
# change fewer: qtrain.config_checks.PER_INVOCATION).
PER_INVOCATION = (
    "hardware",
    "tracking",
    "trainer",
    "train",
    "test",
    "ckpt_path",
    "init_from",
    "export",
    "debug",
    "hydra",
)
NAME = "checkpoint"


def _key_values(overrides: list[str]) -> dict[str, str]:
    return dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o and not o.startswith("-"))


def evaluation_config(overrides: list[str]) -> Path | None:
    """For `train=false ckpt_path=<readable checkpoint>`, the folder of the primary config
    `checkpoint.yaml` to compose instead of `config`; None for any other run (an unreadable
    checkpoint is refused later, by the run, with its one line)."""
    given = _key_values(overrides)
    if given.get("train", "").lower() != "false" or not given.get("ckpt_path"):
        return None
    from qtrain.engine.checkpoint import FORMAT  # torch loads only for an evaluation (fast --help)
    from qtrain.files import load_tagged

    try:
        saved = load_tagged(Path(given["ckpt_path"]).expanduser(), FORMAT, "checkpoint")["config"]
    except (OSError, ValueError, KeyError):
        return None
    switched = [group for group in EXPERIMENT_GROUPS if group in given]
    values = {key: value for key, value in saved.items() if key not in (*PER_INVOCATION, *switched)}
    # The task decides what is monitored; the rest of `trainer` is this invocation's.
    values["trainer"] = {"monitor": saved["trainer"]["monitor"]}
    left_out = [{f"override {group}": None} for group in EXPERIMENT_GROUPS if group not in switched]
    folder = Path(tempfile.mkdtemp(prefix="qtrain-checkpoint-config-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    config = {"defaults": ["config", *left_out, "_self_"], "hydra": {"searchpath": [f"file://{CONFIG_DIR}"]}, **values}
    OmegaConf.save(OmegaConf.create(config), folder / f"{NAME}.yaml")
    return folder
