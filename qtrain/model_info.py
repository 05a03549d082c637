"""What a trained model needs beside its weights to be used: the classes it names, the
input it takes (shape, normalization) and the config that builds it. Checkpoints carry
it (`data`), and each run writes it with the test metrics to `model_info.json`."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from qtrain.config_schema import plain_values
from qtrain.files import atomic_write


def data_description(data) -> dict:
    """The class names and `data.input_info()`: what a checkpoint keeps of its data."""
    return {"class_names": list(data.class_names), "input": data.input_info()}


def write_model_info(run_dir: Path, cfg: DictConfig, data, metrics: dict) -> Path:
    info = {
        **data_description(data),
        "task": cfg.task._target_,
        "model": plain_values(cfg.model),
        "checkpoint": "checkpoints/best.pt",
        "test_metrics": {name: value for name, value in metrics.items() if name.startswith("test/")},
    }
    path = run_dir / "model_info.json"
    with atomic_write(path, "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    return path
