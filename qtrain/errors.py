"""Why a run ends early: a user's mistake, a diverged loss, or a stop signal.
Each is reported as one line, never a traceback (unless HYDRA_FULL_ERROR=1)."""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException, ValueError):
    """Bad input (config value, file, checkpoint): the message names the key, the value
    and what is accepted. Exit code 1."""

    def __init__(self, key: str, value: object, accepted: str):
        super().__init__(f"{key}={value}: {accepted}")
        self.key = key

    @classmethod
    def unknown_key(cls, key: str, value: object, accepted: Sequence[str], what: str) -> ConfigError:
        """`key` is none of the names `accepted` beside it: the nearest one, or the list."""
        parent, _, name = key.rpartition(".")
        nearest = difflib.get_close_matches(name, accepted, n=1)
        hint = f"did you mean {parent + '.' if parent else ''}{nearest[0]}?" if nearest else None
        return cls(key, value, f"not {what}; {hint or 'accepted: ' + ', '.join(accepted)}")


class ArgumentError(ValueError):
    """A bad argument to one of qtrain's parts (`QuantumLayer(backend="gpu")`), named as
    the caller wrote it: `backend=gpu: use one of torch, qiskit, aer`. The parts know
    nothing of configs; the app says it in config keys (qtrain.models.build)."""

    def __init__(self, argument: str, value: object, accepted: str):
        super().__init__(f"{argument}={value}: {accepted}")
        self.argument, self.value, self.accepted = argument, value, accepted

    def within(self, argument: str) -> ArgumentError:
        """The same error one call up, where the argument came in the dict `argument`."""
        return ArgumentError(f"{argument}.{self.argument}", self.value, self.accepted)


def refuse_in_callback(error: ConfigError) -> NoReturn:
    """A Hydra callback's refusal. Hydra turns a callback's exceptions into warnings and
    goes on, so the callback prints the one line itself and exits (code 1)."""
    print(error, file=sys.stderr)
    raise SystemExit(1)


def byte_size(n: float) -> str:
    """`n` bytes as a person reads them: 1.5 MiB."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    power = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024**power:.1f} {units[power]}"


class DiskFull(CompactHydraException):
    """`path` could not be written for want of space; nothing of it was left behind.
    Exit code 1. `next_step`: what to do once space is freed; the runner says it where
    the writer could not (resume from the run's last.pt)."""

    def __init__(self, path: Path, needed: int, free: int, next_step: str | None = None):
        super().__init__(
            f"{path}: no space left on its disk, {byte_size(needed)} needed and {byte_size(free)} free; "
            f"free some space, then {next_step or 'run again'}"
        )
        self.path, self.needed, self.free, self.next_step = path, needed, free, next_step

    def with_next_step(self, next_step: str) -> DiskFull:
        return DiskFull(self.path, self.needed, self.free, next_step)


class StorageLost(CompactHydraException):
    """The sweep's study database stayed unreachable for `outage_s` seconds: the sweep
    stops (exit code 1), and its command run again later goes on with it."""

    def __init__(self, url: str, outage_s: float, reason: str):
        super().__init__(
            f"hydra.sweeper.storage={url}: unreachable for {outage_s:.0f} s ({reason}); the sweep stopped: "
            "run the same command again once the database is back, to go on with it"
        )


class TrainingDiverged(CompactHydraException):
    """A loss became NaN or infinite; the last checkpoint is from before. Exit code 1;
    a sweeper records the trial as failed."""

    def __init__(self, metric: str, value: float, stage: str, epoch: int):
        super().__init__(
            f"{metric}={value} in stage {stage}, epoch {epoch}: training diverged; try a lower optimizer.lr"
        )


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing `checkpoint`; exit code 128 + signal."""

    def __init__(self, signum: int, checkpoint: Path):
        super().__init__(f"stopped by signal {signum}; resume with ckpt_path={checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class TrialPruned(Exception):
    """The sweep's pruner stopped Optuna trial `trial` after `epoch` (counted across
    stages), its last.pt written. The job returns it to the sweeper, which records the
    trial as PRUNED; its arguments are its fields, so that it pickles across processes."""

    def __init__(self, trial: int, epoch: int, objective: str, value: float):
        super().__init__(trial, epoch, objective, value)
        self.trial, self.epoch, self.objective, self.value = trial, epoch, objective, value

    def __str__(self) -> str:
        return f"trial {self.trial} pruned after epoch {self.epoch} ({self.objective}={self.value:.4g})"
