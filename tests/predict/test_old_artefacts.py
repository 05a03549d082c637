"""Artefacts written by qtrain 0.1.0 (tests/predict/fixtures/v0.1.0, before the layout changed)
still evaluate, resume and load: their `_target_` paths and classes are today's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow.pytorch
import pytest
import torch

import qtrain
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.predict.label_images import trained_model

OLD = Path(__file__).resolve().parent / "fixtures" / "v0.1.0"
# What the old run learned from: a resume must be given the same (see fixtures/README.md).
RESUME = ["model=cnn_quantum", "model.quantum.n_qubits=3", "encoder.channels=[4,8]", "encoder.hidden=8"]
QUICK = [
    "hardware=cpu",
    "tracking=none",
    "trainer.progress=false",
    "trainer.limit_train_batches=3",
    "trainer.limit_eval_batches=2",
]


@pytest.fixture
def old(tmp_path) -> Path:
    folder = tmp_path / "old"
    shutil.copytree(OLD, folder)
    return folder


def test_an_old_checkpoint_rebuilds_the_model_it_saved(old):
    example = torch.load(old / "example.pt", weights_only=True)
    model = trained_model(load_checkpoint(old / "last.pt"), torch.device("cpu")).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(example["input"]), example["output"], atol=1e-6, rtol=0)


@pytest.mark.slow  # a run's evaluation (the fast tier rebuilds the model above)
def test_an_old_checkpoint_evaluates_alone(old, tmp_path):
    metrics = qtrain.train(["train=false", f"ckpt_path={old / 'last.pt'}", *QUICK], run_dir=tmp_path / "eval")
    config = json.loads((tmp_path / "eval" / "model_info.json").read_text())
    assert config["model"]["quantum"]["n_qubits"] == 3
    assert 0 <= metrics["test/acc"] <= 1 and metrics["test/loss"] > 0


@pytest.mark.slow  # a resumed run
def test_an_old_checkpoint_resumes_and_trains_on(old, tmp_path):
    before = load_checkpoint(old / "last.pt")["state"]
    metrics = qtrain.train(
        [f"ckpt_path={old / 'last.pt'}", *RESUME, *QUICK, "stages.train.epochs=3"], run_dir=tmp_path / "resumed"
    )
    rows = (tmp_path / "resumed" / "history.csv").read_text().splitlines()[1:]
    assert len(before["history"]) == 2 and len(rows) == 3
    assert 0 <= metrics["test/acc"] <= 1


def test_an_old_mlflow_model_loads_and_predicts_as_it_did(old):
    example = torch.load(old / "example.pt", weights_only=True)
    model = mlflow.pytorch.load_model(str(old / "mlflow_model"))
    with torch.no_grad():
        torch.testing.assert_close(model(example["input"]), example["output"], atol=1e-5, rtol=0)
