"""Shared helpers, as fixtures: compose configs with Hydra's compose API, run in a
temporary folder, write small datasets. Each fixture returns its helper function
(`def test_x(run_cli): run_cli("model=simple_cnn", cwd=tmp_path)`); modules that need
the config folder at collection read it from `qtrain.CONFIG_DIR`."""

from __future__ import annotations

import csv
import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

import qtrain
from qtrain.engine import loop
from qtrain.engine.checkpoint import load_checkpoint

CONF = Path(qtrain.CONFIG_DIR)
ROOT = CONF.parent


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and the runs it starts) gets its share of the
    cores instead of a thread per core: N workers x N threads thrash on N cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


_share_the_cores()


def _untracked(overrides: tuple[str, ...]) -> list[str]:
    """Runs are untracked unless a test asks for tracking (MLflow's first use of a
    database costs seconds; tests/test_tracking.py covers it)."""
    asked = any(o.lstrip("+~").startswith("tracking") for o in overrides)
    return list(overrides) if asked else [*overrides, "tracking=none"]


@pytest.fixture(autouse=True)
def _no_tracking_in_the_repo(tmp_path_factory, monkeypatch):
    # A test that tracks without naming a store writes here, never to ./mlflow.db.
    store = tmp_path_factory.getbasetemp() / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")


def _options(group: str) -> list[str]:
    """The options of a config group, as `python -m qtrain --help` lists them."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _make_config(*overrides: str) -> DictConfig:
    """The config `python -m qtrain <overrides>` runs (qtrain.compose), untracked."""
    return qtrain.compose(_untracked(overrides))


def _run_config(run_dir: Path, *overrides: str) -> dict:
    from qtrain.run import run

    return run(_make_config(*overrides), run_dir)


def _run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qtrain", *_untracked(args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, 0x08, ndim), big-endian dims, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _write_mnist_folder(folder: Path, n_train: int = 200, n_test: int = 50, compress: bool = True, seed: int = 0):
    """Four IDX files of random 28x28 images whose label is readable from the image
    (a bright row at the label's height), so a model can learn them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        images[np.arange(n), 2 + 2 * labels, :] = 255
        _write_idx(folder / f"{split}-images-idx3-ubyte", images, compress)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", labels, compress)
        arrays[split] = (images, labels)
    return arrays


def _write_image_folder(root: Path, classes=("a", "b", "c"), per_class=10) -> None:
    """Class folders of random 12x12 PNGs."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{j}.png")


@pytest.fixture
def fast() -> list[str]:
    """Overrides for a tiny CPU run."""
    return ["debug=fast", "hardware=cpu"]


def _final_weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _interrupt_after(monkeypatch, steps: int) -> None:
    """Send this process a real SIGTERM after `steps` optimizer steps."""
    count = {"n": 0}
    original = loop.optimizer_step

    def step_then_signal(*args, **kwargs):
        original(*args, **kwargs)
        count["n"] += 1
        if count["n"] == steps:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "optimizer_step", step_then_signal)


def _read_history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def _image_folder_data(root, **kwargs):
    """ImageFolderData over `root` (a write_image_folder), 3 classes of 16x16 images."""
    from qtrain.data.image_folder import ImageFolderData

    options = {"name": "image_folder", "num_classes": 3, "in_channels": 3, "image_size": 16, "batch_size": 4}
    return ImageFolderData(**{**options, "root": str(root), **kwargs})


def _as_fixture(helper):
    """`helper` as a session fixture named as it, without its underscore: a test asks for
    `run_cli` and calls it."""
    return pytest.fixture(scope="session", name=helper.__name__.removeprefix("_"))(lambda: helper)


# The helpers, as fixtures.
options = _as_fixture(_options)
untracked = _as_fixture(_untracked)
make_config = _as_fixture(_make_config)
run_config = _as_fixture(_run_config)
run_cli = _as_fixture(_run_cli)
write_mnist_folder = _as_fixture(_write_mnist_folder)
write_image_folder = _as_fixture(_write_image_folder)
image_folder_data = _as_fixture(_image_folder_data)
final_weights = _as_fixture(_final_weights)
read_history = _as_fixture(_read_history)


@pytest.fixture
def interrupt_after(monkeypatch):
    """`interrupt_after(steps)`: a real SIGTERM to this process after `steps` optimizer steps."""
    return lambda steps: _interrupt_after(monkeypatch, steps)
