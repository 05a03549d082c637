"""A disk that fills while a run writes: one line naming the file, the space needed and
free, and what to do; the checkpoints written before stay loadable; nothing half-written
is left behind."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
import torch

import qtrain.files
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.errors import DiskFull

SHORT = ["model=simple_cnn", "hardware=cpu", "trainer.progress=false", "trainer.limit_train_batches=4"]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs, where the test runs as root and may mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=False).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root; test_a_report_on_a_full_disk... covers the rest without one")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill_once_written(disk: Path, watched: Path, leave: int) -> threading.Thread:
    """A thread that fills `disk`, all but `leave` bytes, once `watched` exists."""

    def fill() -> None:
        while not watched.exists():
            time.sleep(0.01)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with open(disk / "filler", "wb") as f:
            f.write(b"\0" * max(free - leave, 0))

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_disk_full_during_training_says_so_in_one_line_and_keeps_the_last_checkpoints(small_disk, run_cli, tmp_path):
    run_dir = small_disk / "run"
    checkpoints = run_dir / "checkpoints"
    filler = fill_once_written(small_disk, checkpoints / "last.pt", leave=64 * 1024)
    result = run_cli(*SHORT, "stages.train.epochs=6", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    filler.join()
    assert result.returncode == 1
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    lines = [line for line in said if "no space left" in line]
    assert len(lines) == 1 and not any("Traceback" in line for line in said), said
    written = re.search(r"(\S+\.pt): no space left on its disk, ([\d.]+) MiB needed and ([\d.]+) KiB free", lines[0])
    assert written is not None, lines[0]
    assert Path(written[1]).parent == checkpoints and float(written[2]) > 0.5 and float(written[3]) <= 64
    assert lines[0].endswith(f"free some space, then resume with ckpt_path={checkpoints / 'last.pt'}")
    last, best = load_checkpoint(checkpoints / "last.pt"), load_checkpoint(checkpoints / "best.pt")
    assert len(last["state"]["history"]) == 1 and len(best["state"]["history"]) == 1  # the epoch before the disk filled
    assert not list(small_disk.rglob("*.tmp"))
    (small_disk / "filler").unlink()  # space freed: the run goes on from its last.pt
    resumed = run_cli(*SHORT, "stages.train.epochs=6", f"ckpt_path={checkpoints / 'last.pt'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_report_on_a_full_disk_names_itself_and_leaves_nothing_half_written(tmp_path, run_config, monkeypatch):
    real_open = open

    class NoSpaceLeft:  # a file whose writes find the disk full
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def no_space_for_reports(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return NoSpaceLeft(f) if ".metrics.json." in str(path) else f  # atomic_write's temporary metrics.json

    monkeypatch.setattr(qtrain.files, "open", no_space_for_reports, raising=False)
    with pytest.raises(DiskFull) as full:
        run_config(tmp_path, *SHORT, "stages.train.epochs=1")
    assert full.value.path == tmp_path / "metrics.json" and full.value.needed > 100
    assert str(full.value).startswith(f"{tmp_path / 'metrics.json'}: no space left on its disk")
    assert not (tmp_path / "metrics.json").exists() and not list(tmp_path.rglob("*.tmp"))
    last, best = (
        load_checkpoint(tmp_path / "checkpoints" / "last.pt"),
        load_checkpoint(tmp_path / "checkpoints" / "best.pt"),
    )
    assert all(torch.equal(last["model"][key], best["model"][key]) for key in best["model"])


@pytest.mark.slow
def test_an_artifact_store_on_a_full_disk_stops_the_run_in_one_line_and_sync_sends_it_later(
    small_disk, run_cli, tmp_path
):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the runs' store beside, their artifacts on the small disk
    filler = fill_once_written(small_disk, small_disk, leave=16 * 1024)
    filler.join()
    run_dir = tmp_path / "run"
    result = run_cli(
        *SHORT, "stages.train.epochs=1", "tracking=mlflow", "tracking.mlflow.system_metrics=false",
        f"hydra.run.dir={run_dir}", cwd=small_disk, env={"MLFLOW_TRACKING_URI": store},
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "no space left" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.search(rf"{small_disk}/mlruns/\S+: no space left on its disk, .+ needed and .+ free", lines[0]), lines[0]
    assert lines[0].endswith(f"free some space, then upload what is missing: python -m qtrain.tracking.sync {run_dir}")
    assert (run_dir / "metrics.json").is_file()  # the run itself is whole
    (small_disk / "filler").unlink()
    synced = subprocess.run(
        [sys.executable, "-m", "qtrain.tracking.sync", str(run_dir), "--uri", store],
        cwd=small_disk, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr[-2000:]
    run = mlflow.MlflowClient(store).search_runs(mlflow.MlflowClient(store).search_experiments()[0].experiment_id)[0]
    assert run.info.status == "FINISHED"
    assert {a.path for a in mlflow.MlflowClient(store).list_artifacts(run.info.run_id)} >= {"metrics.json", "plots"}
