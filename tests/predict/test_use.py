"""Using a trained model: evaluation from the checkpoint alone, model_info.json, the
torch.export program, python -m qtrain.predict, and qtrain.train / qtrain.compose."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from hydra.utils import execution_whitelist, instantiate
from omegaconf import OmegaConf
from PIL import Image
from sklearn.datasets import load_digits

import qtrain
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.predict.label_images import trained_model

SHORT = ["hardware=cpu", "trainer.progress=false", "stages.train.epochs=2", "trainer.limit_train_batches=4"]


def predict_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "qtrain.predict", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_cli):
    """One short cnn_quantum run on digits, exported."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_cli("model=cnn_quantum", *SHORT, "export=true", "hydra.run.dir=run", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "run"


def test_evaluation_rebuilds_the_model_and_data_from_the_checkpoint(trained, tmp_path, run_cli):
    best = trained / "checkpoints" / "best.pt"
    # No model= or dataset=: the defaults (resnet_quantum) would not fit these weights.
    result = run_cli("train=false", f"ckpt_path={best}", "hydra.run.dir=eval", "dataset.batch_size=32", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/acc"] == json.loads((trained / "metrics.json").read_text())["test/acc"]
    config = OmegaConf.load(tmp_path / "eval" / ".hydra" / "config.yaml")
    assert config.model.encoder._target_ == "qtrain.models.simple_cnn.SimpleCNN" and config.model.quantum.n_qubits == 6
    assert config.dataset.batch_size == 32  # the command line wins


@pytest.mark.slow  # a two-job sweep of evaluations
def test_a_sweep_evaluates_the_checkpoint_in_each_job_and_records_it(trained, tmp_path, run_cli):
    best = trained / "checkpoints" / "best.pt"
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "train=false", f"ckpt_path={best}", "dataset.batch_size=16,32", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trained_acc = json.loads((trained / "metrics.json").read_text())["test/acc"]
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["test/acc"] == trained_acc
        config = OmegaConf.load(sweep / job / ".hydra" / "config.yaml")
        assert config.model.quantum.n_qubits == 6 and config.dataset.batch_size == (16, 32)[int(job)]


def test_a_group_on_the_command_line_replaces_the_stored_one(trained):
    cfg = qtrain.compose(["train=false", f"ckpt_path={trained / 'checkpoints' / 'best.pt'}", "model=simple_cnn"])
    assert cfg.model._target_ == "qtrain.models.simple_cnn.SimpleCNN" and "quantum" not in cfg.model
    assert cfg.dataset.name == "digits" and cfg.seed == 42
    # the rest is the checkpoint's resolved config, not the defaults' interpolations
    assert not OmegaConf.is_interpolation(cfg.dataset, "split_seed")
    assert OmegaConf.is_interpolation(qtrain.compose(["model=simple_cnn"]).dataset, "split_seed")


def test_model_info_describes_classes_input_and_metrics(trained):
    info = json.loads((trained / "model_info.json").read_text())
    metrics = json.loads((trained / "metrics.json").read_text())
    assert info["class_names"] == [str(i) for i in range(10)]
    assert info["input"]["shape"] == [1, 16, 16] and len(info["input"]["mean"]) == len(info["input"]["std"]) == 1
    assert info["model"]["quantum"]["n_qubits"] == 6
    assert info["test_metrics"]["test/acc"] == metrics["test/acc"]


def test_the_exported_program_equals_the_model_on_the_test_split(trained):
    checkpoint = load_checkpoint(trained / "checkpoints" / "best.pt")
    model = trained_model(checkpoint, torch.device("cpu"))
    program = torch.export.load(trained / "export" / "model.pt2").module()
    with execution_whitelist(qtrain.TRUSTED_TARGETS):
        data = instantiate(OmegaConf.create(checkpoint["config"]).dataset)
    data.setup("cpu")
    x = data.splits["test"][0]
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=0)


def test_the_exported_program_runs_without_qtrain(trained, tmp_path):
    script = (
        "import sys; sys.modules['qtrain'] = None\n"  # import qtrain would fail
        "import torch\n"
        f"model = torch.export.load({str(trained / 'export' / 'model.pt2')!r}).module()\n"
        "print(tuple(model(torch.zeros(5, 1, 16, 16)).shape))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(5, 10)"


@pytest.mark.slow  # trains through qiskit-machine-learning (about 20 s)
def test_a_model_export_cannot_trace_is_one_line_and_the_run_is_kept(tmp_path, run_cli):
    # qiskit-machine-learning's connector leaves torch for NumPy: torch.export cannot follow it.
    overrides = ["model=cnn_quantum", "model.quantum.backend=qiskit", "model.quantum.n_qubits=2", "debug=fast"]
    result = run_cli(*overrides, "hardware=cpu", "export=true", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "export=True: torch.export cannot trace HybridClassifier" in errors[0]
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "model_info.json").is_file()
    assert not (tmp_path / "run" / "export" / "model.pt2").exists()


def test_predict_labels_a_folder_and_skips_what_is_not_an_image(trained, tmp_path):
    digits = load_digits()
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        Image.fromarray((digits.images[i] * 255 / 16).astype("uint8")).save(images / f"digit{i}.png")
    (images / "notes.txt").write_text("not an image")
    best = trained / "checkpoints" / "best.pt"
    result = predict_cli(f"ckpt_path={best}", f"input={images}", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"skipped {images / 'notes.txt'}" in result.stdout
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(os.path.basename(row["file"]) for row in rows) == [f"digit{i}.png" for i in range(5)]
    for row in rows:
        probs = {name: float(row[name]) for name in map(str, range(10))}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5) and row["class"] == max(probs, key=probs.get)
    assert (tmp_path / "out" / "predictions.png").stat().st_size > 0


def test_predict_reads_images_as_training_did(tmp_path, write_mnist_folder, run_cli):
    """MNIST test images written as PNG files get the labels the model gives the same
    images through the dataset: predict resizes and normalizes as training did."""
    arrays = write_mnist_folder(tmp_path / "idx", n_train=200, n_test=40)
    data = [f"dataset.root={tmp_path / 'idx'}", "dataset.download=false", "dataset.augment.enabled=false"]
    result = run_cli("experiment=mnist_simple_cnn", *data, "hardware=cpu", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    images, labels = arrays["t10k"]
    (tmp_path / "png").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.astype("uint8")).save(tmp_path / "png" / f"{i:03d}.png")
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert (
        predict_cli(f"ckpt_path={best}", f"input={tmp_path / 'png'}", "hydra.run.dir=out", cwd=tmp_path).returncode == 0
    )
    with open(tmp_path / "out" / "predictions.csv") as f:
        predicted = [int(row["class"]) for row in csv.DictReader(f)]
    checkpoint = load_checkpoint(best)
    with execution_whitelist(qtrain.TRUSTED_TARGETS):
        dataset = instantiate(OmegaConf.create(checkpoint["config"]).dataset)
    dataset.setup("cpu")
    with torch.no_grad():
        expected = trained_model(checkpoint, torch.device("cpu"))(dataset.splits["test"][0]).argmax(1).tolist()
    assert predicted == expected
    assert sum(p == y for p, y in zip(predicted, labels)) >= 0.9 * len(labels)  # and the model learned them


def test_predict_without_any_image_is_refused(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("text")
    result = predict_cli(
        f"ckpt_path={trained / 'checkpoints' / 'best.pt'}", f"input={tmp_path / 'notes.txt'}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"input={tmp_path / 'notes.txt'}: holds no readable image" in result.stdout


def test_train_from_python_returns_the_cli_metrics(tmp_path, run_cli):
    overrides = ["model=simple_cnn", "debug=fast", "hardware=cpu", "tracking=none"]
    from_python = qtrain.train(overrides, run_dir=tmp_path / "api")
    assert run_cli(*overrides, "hydra.run.dir=cli", cwd=tmp_path).returncode == 0
    from_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert from_python == pytest.approx({k: v for k, v in from_cli.items() if k != "stages"}, rel=1e-5)
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "qtrain.log", "checkpoints/best.pt", "model_info.json"):
        assert (tmp_path / "api" / name).is_file(), name
    assert OmegaConf.load(tmp_path / "api" / ".hydra" / "overrides.yaml") == overrides


def test_compose_gives_the_cli_config():
    cfg = qtrain.compose(["experiment=fashion_mnist_hybrid_ensemble", "encoder=resnet18"])
    assert cfg.model._target_ == "qtrain.models.ensemble.HybridEnsemble" and cfg.dataset.name == "fashion_mnist"
    assert cfg.model.encoder._target_ == "qtrain.models.timm_models.resnet"


def test_predict_on_a_missing_gpu_names_its_own_key(trained, tmp_path):
    best = trained / "checkpoints" / "best.pt"
    result = predict_cli(f"ckpt_path={best}", f"input={tmp_path}", "device=cuda", cwd=tmp_path)
    assert result.returncode == 1
    assert "device=cuda: torch sees no CUDA GPU here; use device=cpu or device=auto" in result.stdout
