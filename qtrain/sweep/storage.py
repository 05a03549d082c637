"""The study's storage: one per database URL in a process, shared by the sweeper and by
every job it runs there (the basic launcher runs them all in the sweeper's process: a
storage per trial would leave a pool of connections per trial open until the garbage
collector found it). Created once before the sweeper opens it: two sweeps started
together on a new database would both create its tables, and one would die on a
duplicate (PostgreSQL's UniqueViolation); here the loser of that race retries and finds
the tables made.

A database that goes away under a running sweep (a restart, a failover, a lost network)
is waited for: each call that loses its connection is tried again with a growing wait,
for up to `hydra.sweeper.storage_outage_s`; past that, the sweep stops with one line
(StorageLost), and the same command later goes on with it."""

from __future__ import annotations

import abc
import copy
import functools
import logging
import random
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import tenacity
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError

from qtrain.errors import ConfigError, StorageLost, refuse_in_callback
from qtrain.tracking.redact import redact

log = logging.getLogger("qtrain")

ATTEMPTS = 5
OUTAGE_S = 300  # hydra.sweeper.storage_outage_s's default: how long a lost database is waited for
LONGEST_WAIT_S = 30  # between two tries


@functools.cache
def study_storage(url: str, outage_s: float = OUTAGE_S) -> RetryingStorage:
    for attempt in range(1, ATTEMPTS):
        try:
            return RetryingStorage(_open(url), url, outage_s)
        except (IntegrityError, ProgrammingError):  # another process is creating the same tables
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    return RetryingStorage(_open(url), url, outage_s)


def _open(url: str) -> optuna.storages.RDBStorage:
    """The database as it is now: one that cannot be reached is refused (a wrong URL is not
    waited for); `pool_pre_ping` replaces the pool's connections that a restart closed."""
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except OperationalError as error:
        reason = _reason(error)
        raise ConfigError("hydra.sweeper.storage", redact(url), f"cannot open the study's storage ({reason})") from None
    except ModuleNotFoundError as error:
        raise ConfigError(
            "hydra.sweeper.storage",
            redact(url),
            f"its database driver is not installed ({error.name}); for postgresql:// pip install 'qtrain[postgres]'",
        ) from None


def _database_error(error: BaseException) -> BaseException:
    """SQLAlchemy's error under Optuna's: a failed commit reaches us as Optuna's
    StorageInternalError raised from it."""
    if isinstance(error, optuna.exceptions.StorageInternalError) and error.__cause__ is not None:
        return error.__cause__
    return error


def _reason(error: BaseException) -> str:
    error = _database_error(error)
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def _connection_lost(error: BaseException) -> bool:
    error = _database_error(error)
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (OperationalError, InterfaceError))


CREATION_MARK = "qtrain.creation"  # a system attribute: which call created the trial


class RetryingStorage(optuna.storages.BaseStorage):
    """An RDBStorage whose calls outlast an outage of its database. Each call is one
    transaction of Optuna's, so trying it again is safe, with two exceptions handled
    here: a trial created, or a trial's final state set, just before the connection
    dropped (the change is made, its answer lost)."""

    def __init__(self, rdb: optuna.storages.RDBStorage, url: str, outage_s: float):
        self.rdb, self.url, self.outage_s = rdb, url, outage_s

    def _call(self, call, *args, made=None, **kwargs):
        """`call`, tried again while the connection is lost. `made`, for a call whose change
        the database may have made while its answer was lost: asked before each retry, the
        change's result if it is there, else None (then the call is tried again)."""
        started = time.monotonic()
        tries = 0

        def once():
            nonlocal tries
            tries += 1
            if tries > 1 and made is not None and (result := made()) is not None:
                return result
            return call(*args, **kwargs)

        def waiting(state: tenacity.RetryCallState) -> None:
            log.warning(
                "the study's storage %s is unreachable (%s): try %d in %.0f s (waiting up to %.0f s in all)",
                redact(self.url), _reason(state.outcome.exception()), state.attempt_number + 1,
                state.upcoming_sleep, self.outage_s,
            )  # fmt: skip

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_connection_lost),
            wait=tenacity.wait_exponential(min=1, max=LONGEST_WAIT_S),
            stop=tenacity.stop_after_delay(self.outage_s),
            before_sleep=waiting,
            reraise=True,
        )
        try:
            result = retrying(once)
        except Exception as error:
            if _connection_lost(error):
                raise StorageLost(redact(self.url), self.outage_s, _reason(error)) from None
            raise
        if retrying.statistics.get("attempt_number", 1) > 1:
            log.info("the study's storage %s is back after %.0f s", redact(self.url), time.monotonic() - started)
        return result

    def set_trial_state_values(self, trial_id: int, state, values=None) -> bool:
        def made() -> bool | None:
            return True if self.rdb.get_trial(trial_id).state == state else None

        return self._call(self.rdb.set_trial_state_values, trial_id, state, values, made=made)

    def create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        """A new trial, created once: each creation marks its trial, and a try after a lost
        connection first looks for the mark (else the sweep would count a trial twice,
        and leave one RUNNING that no job runs)."""
        template = copy.deepcopy(template_trial) if template_trial else _new_running_trial()
        mark = uuid.uuid4().hex
        template.system_attrs[CREATION_MARK] = mark

        def made() -> int | None:
            for trial in self.rdb.get_all_trials(study_id, deepcopy=False):
                if trial.system_attrs.get(CREATION_MARK) == mark:
                    return self.rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            return None

        return self._call(self.rdb.create_new_trial, study_id, template, made=made)

    def remove_session(self) -> None:
        self.rdb.remove_session()


def _new_running_trial() -> optuna.trial.FrozenTrial:
    """What RDBStorage creates without a template: a RUNNING trial started now."""
    return optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
        intermediate_values={}, trial_id=-1,
    )  # fmt: skip


def _retried(name: str):
    def method(self, *args, **kwargs):
        return self._call(getattr(self.rdb, name), *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


# Every other call of Optuna's storage interface goes to the RDBStorage through _call.
for _name, _value in vars(optuna.storages.BaseStorage).items():
    if callable(_value) and not _name.startswith("_") and _name not in vars(RetryingStorage):
        setattr(RetryingStorage, _name, _retried(_name))
abc.update_abstractmethods(RetryingStorage)


class OptunaStorageCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        url = config.hydra.sweeper.get("storage")
        if url:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            try:
                study_storage(url, config.hydra.sweeper.get("storage_outage_s", OUTAGE_S))
            except ConfigError as error:
                refuse_in_callback(error)
