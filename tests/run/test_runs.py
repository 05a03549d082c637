"""Whole runs as a user starts them: the default experiment, timm models, multirun."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

pytestmark = pytest.mark.slow  # full-length runs: make test-slow


def test_the_default_run_is_resnet_quantum_and_reaches_95_percent(tmp_path, run_config):
    # `python -m qtrain`: resnet18 -> 6-qubit circuit on digits, 12 epochs (~2 min on 2 cores)
    metrics = run_config(tmp_path, "hardware=cpu", "trainer.progress=false")
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test/acc"] == metrics["test/acc"] >= 0.95
    saved = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)["config"]["model"]
    assert saved["encoder"]["name"] == "resnet18" and saved["quantum"]["backend"] == "torch"


def test_simple_cnn_on_digits_reaches_97_percent(tmp_path, run_config):
    metrics = run_config(tmp_path, "model=simple_cnn", "dataset=digits", "hardware=cpu", "trainer.progress=false")
    assert metrics["test/acc"] >= 0.97


@pytest.mark.parametrize("model", ["resnet", "vit"])
def test_timm_models_train_on_digits(tmp_path, model, run_config):
    metrics = run_config(tmp_path, f"model={model}", "dataset.image_size=16", "debug=fast", "hardware=cpu")
    assert math.isfinite(metrics["test/loss"])
    with open(tmp_path / "history.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert int(row["step"]) == 3 and math.isfinite(float(row["train/loss"]))  # debug=fast: 3 batches


def test_multirun_writes_one_directory_per_job(tmp_path, run_cli):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "model=simple_cnn", "debug=fast", "optimizer=adam,sgd", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    optimizers = [(job / ".hydra" / "overrides.yaml").read_text() for job in jobs]
    assert "optimizer=adam" in optimizers[0] and "optimizer=sgd" in optimizers[1]
    assert all("test/acc" in json.loads((job / "metrics.json").read_text()) for job in jobs)


def test_cnn_quantum_on_digits_reaches_95_percent(tmp_path, run_config):
    metrics = run_config(tmp_path, "model=cnn_quantum", "dataset=digits", "hardware=cpu", "trainer.progress=false")
    assert metrics["test/acc"] >= 0.95
