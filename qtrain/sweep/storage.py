"""The study's storage: one per database URL in a process, shared by the sweeper and by
every job it runs there (the basic launcher runs them all in the sweeper's process: a
storage per trial would leave a pool of connections per trial open until the garbage
collector found it). Created once before the sweeper opens it: two sweeps started
together on a new database would both create its tables, and one would die on a
duplicate (PostgreSQL's UniqueViolation); here the loser of that race retries and finds
the tables made."""

from __future__ import annotations

import functools
import logging
import random
import time
from pathlib import Path
from typing import Any

import optuna
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from qtrain.errors import ConfigError, refuse_in_callback
from qtrain.tracking.redact import redact

log = logging.getLogger("qtrain")

ATTEMPTS = 5


@functools.cache
def study_storage(url: str) -> optuna.storages.RDBStorage:
    for attempt in range(1, ATTEMPTS):
        try:
            return _open(url)
        except (IntegrityError, ProgrammingError):  # another process is creating the same tables
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    return _open(url)


def _open(url: str) -> optuna.storages.RDBStorage:
    try:
        return optuna.storages.RDBStorage(url)
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        raise ConfigError("hydra.sweeper.storage", redact(url), f"cannot open the study's storage ({reason})") from None
    except ModuleNotFoundError as error:
        raise ConfigError(
            "hydra.sweeper.storage",
            redact(url),
            f"its database driver is not installed ({error.name}); for postgresql:// pip install 'qtrain[postgres]'",
        ) from None


class OptunaStorageCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        url = config.hydra.sweeper.get("storage")
        if url:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            try:
                study_storage(url)
            except ConfigError as error:
                refuse_in_callback(error)
