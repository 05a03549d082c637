"""What a trained model needs beside its weights to be used: the classes it names, the
input it takes (shape, normalization) and the config that builds it. Checkpoints carry
it (`data`), and each run writes it with the test metrics to `model_info.json`."""

from __future__ import annotations

import json
from pathlib import Path

from qtrain.engine.checkpoint import data_description
from qtrain.files import atomic_write


def write_model_info(run_dir: Path, config: dict, data, metrics: dict, noise: dict | None = None) -> Path:
    """`config`: the run's config as plain values (RunConfig.values); `noise`: what each
    noisy quantum layer simulated (device, calibration, layout, method), by module."""
    info = {
        **data_description(data),
        "task": config["task"]["_target_"],
        "model": config["model"],
        "checkpoint": "checkpoints/best.pt",
        "test_metrics": {name: value for name, value in metrics.items() if name.startswith("test/")},
    }
    if noise:
        info["quantum_noise"] = noise
    path = run_dir / "model_info.json"
    with atomic_write(path, "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    return path
