"""A run directory holds one run. Hydra would write a new run's `.hydra/` record and log
into a folder that already holds one (`hydra.run.dir=` reused, or two runs started in
the same second), and the new run would overwrite the old one's files. This callback
refuses such a folder before Hydra writes anything to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from qtrain.errors import ConfigError, refuse_in_callback

RUN_MARKERS = (".hydra", "qtrain.log", "metrics.json", "checkpoints", "multirun.yaml")


def holds_a_run(folder: Path) -> bool:
    return any((folder / marker).exists() for marker in RUN_MARKERS)


def check_fresh(key: str, folder: str) -> None:
    """`folder` can take a new run: not a file, not a run's folder, and writable."""
    path = Path(folder)
    if path.is_file():
        raise ConfigError(key, folder, "is a file; give a folder for the run")
    if holds_a_run(path):
        raise ConfigError(
            key, folder, "already holds a run, which would be overwritten; give a new folder (resume: ckpt_path=...)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".qtrain-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:  # read-only, no permission, a full disk, a file on the way
        raise ConfigError(key, folder, f"cannot write there ({type(error).__name__}: {error.strerror})") from None


class RunDirectoryCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("RANK", "0") != "0":
            return  # under torchrun, rank 0 checks the folder every rank shares, and alone writes to it
        try:
            check_fresh("hydra.run.dir", config.hydra.run.dir)
        except ConfigError as error:
            refuse_in_callback(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_fresh("hydra.sweep.dir", config.hydra.sweep.dir)
        except ConfigError as error:
            refuse_in_callback(error)
