"""Which launch a sweep's command continues (qtrain.sweep.launches): an unfinished one
whose sweeper is gone; never a finished one, nor one a live sweeper still runs."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time

import optuna
import pytest
from omegaconf import OmegaConf

from qtrain.sweep.launches import STALE_S, command_of, interrupted_launch, launches, new_launch

optuna.logging.set_verbosity(optuna.logging.WARNING)
COMMAND = "hparams_search=optuna model=simple_cnn hydra.mode=MULTIRUN"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def record(study, command: str = COMMAND, **changes):
    launch = new_launch(study, command, 4, "/sweeps/a")
    for key, value in changes.items():
        setattr(launch, key, value)
    launch.save(study)
    return launch


def test_an_unfinished_launch_whose_sweeper_died_is_continued_by_its_command():
    study = optuna.create_study()
    launch = record(study, pid=dead_pid(), trials=[0, 1])
    assert interrupted_launch(study, COMMAND) == launches(study)[0]
    assert interrupted_launch(study, COMMAND).trials == [0, 1] and launch.number == 0
    assert interrupted_launch(study, COMMAND + " seed=1") is None  # another command starts its own


@pytest.mark.parametrize(
    "changes",
    [
        {"finished": True, "pid": 1},  # done: the command again extends the study
        {"pid": os.getpid()},  # its sweeper runs (this process)
        {"host": "elsewhere", "pid": 1},  # another machine's, heartbeat fresh
    ],
    ids=["finished", "running_here", "running_elsewhere"],
)
def test_a_finished_or_live_launch_is_not_continued(changes):
    study = optuna.create_study()
    record(study, **changes)
    assert interrupted_launch(study, COMMAND) is None
    assert new_launch(study, COMMAND, 4, "/sweeps/b").number == 1


def test_another_machines_launch_is_continued_once_its_heartbeat_is_stale():
    study = optuna.create_study()
    launch = record(study, host="elsewhere", pid=1)
    # As a dead sweep left it (save() would renew the heartbeat):
    study.set_user_attr("qtrain.launch.0", dataclasses.asdict(launch) | {"heartbeat": time.time() - STALE_S - 1})
    assert interrupted_launch(study, COMMAND).host == "elsewhere" != socket.gethostname()


def test_the_command_is_the_command_lines_overrides_less_the_sweep_folder():
    config = OmegaConf.create(
        {"hydra": {"overrides": {"task": ["model=simple_cnn"], "hydra": ["hydra.sweep.dir=/a", "hydra.mode=MULTIRUN"]}}}
    )
    assert command_of(config) == "model=simple_cnn hydra.mode=MULTIRUN"
