"""Checkpoint files: written atomically, read back with a clear error when they are not ours."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from qtrain.config.schema import Noise, plain_values
from qtrain.engine.run_directory import holds_a_run
from qtrain.errors import ConfigError
from qtrain.files import atomic_write, load_tagged, remove_dead_temporaries, save_tagged

log = logging.getLogger("qtrain")

FORMAT = "qtrain-checkpoint/4"  # 4: what the model takes (data); 3: a mid-epoch score_sum; 2: best.pt per stage
ACCEPTED = "give a run's checkpoints/last.pt (resume) or best.pt (evaluate)"


def data_description(data) -> dict:
    """The class names and `data.input_info()`: what a checkpoint keeps of its data."""
    return {"class_names": list(data.class_names), "input": data.input_info()}


def save_checkpoint(state: dict, path: Path) -> None:
    save_tagged(path, FORMAT, state)


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict:
    path = Path(path).expanduser()
    if not path.is_file() and holds_a_run(path.parent.parent):
        raise ConfigError(key, path, "its run stopped before it saved a checkpoint; start that run anew")
    if not path.is_file():
        raise ConfigError(key, path, f"no such file; {ACCEPTED}")
    try:
        checkpoint = load_tagged(path, FORMAT, "checkpoint")
    except ValueError as why:
        raise ConfigError(key, path, f"{why}; {ACCEPTED}") from None
    if "config" in checkpoint:
        checkpoint["config"] = upgraded(checkpoint["config"])
    return checkpoint


def upgraded(config: dict) -> dict:
    """A config a checkpoint saved, in today's shape (a resume compares it, an evaluation
    composes it): before noise had keys, a quantum spec saved `noise: null` (ideal), which
    is now the spec with its defaults (ideal too)."""
    quantum = config.get("model", {}).get("quantum")
    if isinstance(quantum, dict) and "noise" in quantum and quantum["noise"] is None:
        quantum["noise"] = plain_values(OmegaConf.structured(Noise))
    return config


def clean_after_kill(path: Path) -> None:
    """Before a run resumes from `path`: the half-written files a kill left beside it."""
    for tmp in remove_dead_temporaries(Path(path).expanduser().parent):
        log.info("removed %s, half-written when the run was killed", tmp)


def load_weights(model, checkpoint: dict, key: str, path) -> None:
    """The checkpoint's weights into `model`, refused in one line when they do not fit."""
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        saved = checkpoint["config"]["model"]["_target_"]
        first_line = str(error).splitlines()[0]
        raise ConfigError(key, path, f"its weights do not fit this model (saved from {saved}): {first_line}") from None


def copy_checkpoint(source: Path, target: Path) -> None:
    with atomic_write(target) as f, open(source, "rb") as original:
        shutil.copyfileobj(original, f)


def prune_epoch_checkpoints(folder: Path, keep: int) -> None:
    """Keep the `keep` newest checkpoints/epoch_*.pt."""
    files = sorted(folder.glob("epoch_*.pt"))
    for old in files[: max(len(files) - keep, 0)]:
        old.unlink()


def rng_states() -> dict:
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
