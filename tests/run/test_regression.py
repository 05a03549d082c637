"""Regression: metrics, losses, the signal generator, the LSTM's two modes, runs and a sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
import torch

from qtrain.config.checks import check_config
from qtrain.data.signal import SignalData, generate
from qtrain.errors import ArgumentError, ConfigError
from qtrain.models.lstm_signal import LSTMSignal
from qtrain.tasks import Regression, regression_metrics

SETTINGS = {
    "num_samples": 40,
    "time_steps": 30,
    "sample_rate": 100.0,
    "frequencies": [2.0, 5.0, 11.0],
    "amplitude": [0.5, 1.5],
    "noise_std": 0.1,
    "seed": 7,
}
# A short regression run: small generated data, two epochs.
SHORT = (
    "model=lstm_signal",
    "dataset=signal",
    "dataset.num_samples=200",
    "dataset.time_steps=40",
    "stages.train.epochs=2",
    "trainer.progress=false",
)


def test_regression_metrics_match_hand_computed_values():
    predicted, target = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 5.0])
    # errors 0, -1, 1, -1; target mean 2.75, deviations -1.75, .25, -.75, 2.25 (squares sum 8.75);
    # prediction deviations -1.5, -.5, .5, 1.5 (squares sum 5); cross products sum 5.5.
    metrics = regression_metrics(predicted, target, "test")
    assert metrics["test/mse"] == pytest.approx(0.75)
    assert metrics["test/rmse"] == pytest.approx(math.sqrt(0.75))
    assert metrics["test/mae"] == pytest.approx(0.75)
    assert metrics["test/corr"] == pytest.approx(5.5 / math.sqrt(5 * 8.75))
    assert metrics["test/r2"] == pytest.approx(1 - 3 / 8.75)
    assert metrics["test/snr_db"] == pytest.approx(10 * math.log10(39 / 3))  # target power 1+9+4+25


def test_metrics_pool_every_sample_and_time_step():
    predicted = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[1.0, 3.0], [2.0, 5.0]])
    assert regression_metrics(predicted, target, "val") == regression_metrics(predicted.ravel(), target.ravel(), "val")


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("mse", (0.25 + 4) / 2),  # errors 0.5 and 2
        ("mae", (0.5 + 2) / 2),
        ("huber", (0.5 * 0.25 + (2 - 0.5)) / 2),  # delta 1: quadratic below 1, linear above
        ("smooth_l1", (0.5 * 0.25 + (2 - 0.5)) / 2),  # beta 1: the same as huber
    ],
)
def test_regression_losses_by_name(loss, expected):
    value = Regression(loss=loss).loss(torch.tensor([[0.5, 2.0]]), torch.zeros(1, 2))
    assert value.item() == pytest.approx(expected)


def test_unknown_loss_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"task.loss=l3: use one of mse, mae, huber, smooth_l1"):
        Regression(loss="l3")


def test_generator_is_deterministic_under_its_seed():
    first, again, other = generate(**SETTINGS), generate(**SETTINGS), generate(**{**SETTINGS, "seed": 8})
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    inputs, targets = first
    assert inputs.shape == (40, 30, 4) and targets.shape == (40, 30)
    assert np.all(inputs[:, :, 1:].sum(axis=2) == 1)  # a one-hot condition at every step


def test_without_noise_one_frequency_is_the_whole_mix():
    inputs, targets = generate(**{**SETTINGS, "frequencies": [3.0], "noise_std": 0.0})
    np.testing.assert_allclose(inputs[:, :, 0], targets, atol=1e-6)


def signal_data(root, **keys) -> SignalData:
    settings = {k: v for k, v in SETTINGS.items() if k != "seed"}
    return SignalData(name="signal", root=str(root), generator_seed=7, batch_size=8, **{**settings, **keys})


def test_a_dataset_is_generated_once_and_reloaded(tmp_path, monkeypatch):
    data = signal_data(tmp_path)
    data.setup("cpu")
    assert (data.size("train"), data.size("val"), data.size("test")) == (28, 6, 6)
    assert data.path.is_file() and data.path.parent == tmp_path

    def no_generating(**settings):
        raise AssertionError("generated again")

    monkeypatch.setattr("qtrain.data.signal.generate", no_generating)
    again = signal_data(tmp_path)
    again.setup("cpu")
    assert torch.equal(again.splits["test"][1], data.splits["test"][1])
    assert signal_data(tmp_path, noise_std=0.2).path != data.path  # other settings, another file


def test_a_damaged_dataset_file_is_generated_again(tmp_path):
    data = signal_data(tmp_path)
    data.setup("cpu")
    expected = data.splits["train"][1].clone()
    data.path.write_bytes(b"half a file")
    again = signal_data(tmp_path)
    again.setup("cpu")
    assert torch.equal(again.splits["train"][1], expected)
    assert torch.load(data.path, weights_only=True)["settings"] == again.settings


def test_frequencies_above_nyquist_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.frequencies=\[2.0, 60.0\]: each must be in \(0, 50\) Hz"):
        signal_data(tmp_path, frequencies=[2.0, 60.0]).setup("cpu")


def test_stateful_and_sequence_modes_give_the_same_outputs():
    torch.manual_seed(0)
    sequence = LSTMSignal(num_conditions=3, hidden_size=16, num_layers=2, mode="sequence")
    stateful = LSTMSignal(num_conditions=3, hidden_size=16, num_layers=2, mode="stateful")
    stateful.load_state_dict(sequence.state_dict())
    x = torch.randn(5, 20, 4, requires_grad=True)
    torch.testing.assert_close(stateful(x), sequence(x), atol=1e-6, rtol=1e-5)
    # Stateful detaches the state after each step: the last output sees no earlier input.
    for model, reaches_back in ((sequence, True), (stateful, False)):
        (grad,) = torch.autograd.grad(model(x)[:, -1].sum(), x)
        assert bool(grad[:, :-1].abs().sum() > 0) is reaches_back
    # Each sample starts from a zero state: a sample's outputs do not depend on its batch.
    torch.testing.assert_close(stateful(x[2:3]), stateful(x)[2:3], atol=1e-6, rtol=1e-5)


def test_unknown_mode_is_refused():
    with pytest.raises(ArgumentError, match="^mode=stateless: use one of sequence, stateful"):
        LSTMSignal(num_conditions=2, mode="stateless")


def test_signal_chooses_the_regression_task_and_its_monitor(make_config):
    cfg = make_config("model=lstm_signal", "dataset=signal")
    assert cfg.task._target_ == "qtrain.tasks.Regression" and cfg.model.num_conditions == 4
    assert (cfg.trainer.monitor, cfg.trainer.monitor_mode, cfg.objective) == ("val/mse", "min", "val/mse_best")
    assert make_config("dataset=signal", "trainer.monitor=val/r2").trainer.monitor_mode == "max"
    assert make_config().task._target_ == "qtrain.tasks.Classification"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=lstm_signal"], r"model.num_conditions=\$\{len:\$\{dataset.frequencies\}\}: interpolation key"),
        # the default model's encoder (resnet18) is the first to read an image key signal lacks
        (["dataset=signal"], r"encoder.in_channels=\$\{dataset.in_channels\}: interpolation key 'dataset.in_channels'"),
        (["dataset=signal", "model=simple_cnn"], r"model.num_classes=\$\{dataset.num_classes\}: interpolation key"),
    ],
)
def test_a_model_and_dataset_that_do_not_fit_are_refused(overrides, message, make_config):
    with pytest.raises(ConfigError, match=message + ".*do not fit together"):
        check_config(make_config(*overrides))


def test_a_regression_run_writes_its_metrics_plots_and_report(tmp_path, run_config):
    metrics = run_config(tmp_path, *SHORT, f"dataset.root={tmp_path / 'data'}", "trainer.monitor=val/r2")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("mse", "rmse", "mae", "corr", "r2", "snr_db"):
        assert saved[f"test/{name}"] == pytest.approx(metrics[f"test/{name}"])
        assert f"val/{name}_best" in saved
    assert saved["test/rmse"] == pytest.approx(math.sqrt(saved["test/mse"]))
    history = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/mse", "val/mse", "val/r2", "val/snr_db"} <= set(history)
    for plot in ("predicted_vs_target.png", "error_histogram.png", "learning_curves.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 0
    assert "test/corr" in (tmp_path / "report.txt").read_text()


def test_a_classification_monitor_is_refused_for_regression(tmp_path, run_config):
    with pytest.raises(ConfigError, match=r"trainer.monitor=val/acc: use one of val/mse, val/rmse, val/mae, val/corr"):
        run_config(tmp_path, *SHORT, f"dataset.root={tmp_path / 'data'}", "trainer.monitor=val/acc")


@pytest.mark.slow
def test_the_default_signal_run_reaches_r2_090_and_corr_095(tmp_path, run_config):
    metrics = run_config(
        tmp_path, "model=lstm_signal", "dataset=signal", f"dataset.root={tmp_path}", "trainer.progress=false"
    )
    assert metrics["test/r2"] >= 0.9 and metrics["test/corr"] >= 0.95


@pytest.mark.slow
def test_an_optuna_sweep_minimizes_val_mse_best(tmp_path, run_cli):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli(
        "-m",
        "hparams_search=optuna",
        *SHORT,
        f"dataset.root={tmp_path / 'data'}",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=signal",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="signal", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # The one space of hparams_search=optuna, less the circuit an LSTM does not have, and the log says so.
    assert "model=lstm_signal has no model.quantum.n_qubits" in result.stdout + result.stderr
    assert {frozenset(t.params) for t in study.trials} == {
        frozenset({"optimizer.lr", "optimizer.weight_decay", "dataset.batch_size"})
    }
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    values = sorted(json.loads(p.read_text())["val/mse_best"] for p in runs)
    assert sorted(t.value for t in study.trials) == pytest.approx(values)
    assert study.best_value == pytest.approx(values[0])
