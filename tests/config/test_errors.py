"""Bad input ends in one message naming the key, the value and what is accepted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from hydra.utils import execution_whitelist

import qtrain
from qtrain import TRUSTED_TARGETS
from qtrain.data.features import FeatureData
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.errors import ConfigError
from qtrain.models.build import build, config_keys

CONF = Path(qtrain.CONFIG_DIR)  # the config groups

FAST = ["model=simple_cnn", "debug=fast", "hardware=cpu"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["optimizer.lr=-1"], "optimizer.lr=-1: must be a number > 0"),
        (["stages.train.lr=0"], "stages.train.lr=0: must be a number > 0"),
        (["stages.train.epochs=0"], "stages.train.epochs=0: must be a positive integer"),
        (["dataset.batch_size=-8"], "dataset.batch_size=-8: must be a positive integer"),
        (["dataset.val_fraction=1.5"], "dataset.val_fraction=1.5: must be a fraction strictly between 0 and 1"),
        (["trainer.monitor=val/f1"], "trainer.monitor=val/f1: use one of val/acc, val/loss"),
        (["train=false"], "ckpt_path=None: train=false evaluates a checkpoint"),
        (["ckpt_path=/no/such/last.pt"], "ckpt_path=/no/such/last.pt: no such file"),
        (
            ["dataset=mnist", "dataset.root=/no/such/dir", "dataset.download=false"],
            "dataset.root=/no/such/dir: no mnist IDX files",
        ),
        (["dataset=image_folder", "dataset.num_classes=2"], "dataset.root=???: is required"),
        (
            ["dataset=image_folder", "dataset.root=/no/such/dir", "dataset.num_classes=2"],
            "dataset.root=/no/such/dir: no such folder",
        ),
        (["hardware.device=tpu"], "hardware.device=tpu: use auto, cpu, cuda or cuda:N"),
        (["hardware.amp=fp8"], "hardware.amp=fp8: use null, auto, bf16 or fp16"),
    ],
)
def test_bad_values_are_refused_before_training(tmp_path, overrides, message, run_config):
    with pytest.raises(ConfigError) as error:
        run_config(tmp_path, *FAST, *overrides)
    assert str(error.value).startswith(message)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_hardware_without_a_gpu_is_refused(tmp_path, run_config):
    with pytest.raises(ConfigError, match="hardware.device=cuda: torch sees no CUDA GPU here; use hardware=cpu"):
        run_config(tmp_path, "debug=fast", "hardware=gpu")


def test_corrupt_checkpoint_is_refused(tmp_path, run_config):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match=f"ckpt_path={bad}: not a readable checkpoint"):
        run_config(tmp_path / "run", *FAST, f"ckpt_path={bad}")


def damaged_files(folder):
    """Bytes that reach torch's reader as different exceptions: random, empty, a torch
    file cut short, a zip header over garbage."""
    whole = folder / "whole.pt"
    torch.save({"format": "x", "weights": torch.arange(1000.0)}, whole)
    kinds = {f"random{seed}": np.random.default_rng(seed).bytes(64 << seed) for seed in range(5)}
    kinds |= {"empty": b"", "cut": whole.read_bytes()[:700], "zip": b"PK\x03\x04" + bytes(200)}
    for name, content in kinds.items():
        (folder / f"{name}.pt").write_bytes(content)
        yield folder / f"{name}.pt"


def test_any_damaged_features_file_or_checkpoint_says_what_is_accepted(tmp_path):
    for damaged in damaged_files(tmp_path):
        with pytest.raises(ConfigError) as refused:
            FeatureData(str(damaged), num_classes=10, num_features=16, batch_size=8).setup()
        assert str(refused.value) == (
            f"dataset.path={damaged}: not a readable features file: damaged, or not a file torch.save wrote; "
            "give the <run>/features.pt of a run whose stage cached its features (stages.<name>.cache_features=true)"
        )
        with pytest.raises(ConfigError) as refused:
            load_checkpoint(damaged)
        assert str(refused.value) == (
            f"ckpt_path={damaged}: not a readable checkpoint: damaged, or not a file torch.save wrote; "
            "give a run's checkpoints/last.pt (resume) or best.pt (evaluate)"
        )


def test_foreign_torch_file_is_refused(tmp_path, run_config):
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match="not a qtrain checkpoint"):
        run_config(tmp_path / "run", *FAST, f"ckpt_path={other}")


def test_checkpoint_of_another_model_is_refused(tmp_path, run_config):
    run_config(tmp_path / "cnn", *FAST)
    last = tmp_path / "cnn" / "checkpoints" / "last.pt"
    with pytest.raises(
        ConfigError, match="weights do not fit this model .saved from qtrain.models.simple_cnn.SimpleCNN"
    ):
        run_config(tmp_path / "resnet", *FAST, "model=resnet", "train=false", f"ckpt_path={last}")


def test_cli_prints_one_line_and_exits_non_zero(tmp_path, run_cli):
    result = run_cli(*FAST, "optimizer.lr=-1", cwd=tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "optimizer.lr=-1: must be a number > 0" in output
    assert "Traceback" not in output
    full = run_cli(*FAST, "optimizer.lr=-1", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr  # the full story when asked for


def test_cli_unknown_option_lists_the_choices(tmp_path, run_cli):
    result = run_cli("model=resnet_50", cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not find 'model/resnet_50'" in result.stderr
    assert all(choice in result.stderr for choice in ("resnet", "simple_cnn", "vit"))


def test_cli_unknown_objective_lists_the_metrics(tmp_path, run_cli):
    result = run_cli(
        "model=simple_cnn", "debug=fast", "objective=val/f2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "objective=val/f2: not a metric of this run; its task reports test/acc" in result.stdout + result.stderr
    # Refused before training: the task says which metrics a run reports (and which way
    # each is better), so an unknown objective no longer costs a whole run.
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_cli_sigterm_writes_last_checkpoint_and_exits(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "qtrain", "model=simple_cnn", "hardware=cpu", "trainer.progress=false"]
    command += ["stages.train.epochs=200", "tracking=none"]
    process = subprocess.Popen(
        [*command, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert f"resume with ckpt_path={last}" in output
    state = torch.load(last, weights_only=True)
    assert 0 < state["state"]["global_step"] < 200 * 20


def test_resume_with_other_settings_names_the_ones_to_use(tmp_path, run_config):
    run_config(tmp_path / "first", *FAST, "optimizer.lr=0.003")
    last = tmp_path / "first" / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError) as error:
        run_config(tmp_path / "again", *FAST, "model=simple_cnn", f"ckpt_path={last}")
    assert str(error.value).startswith(f"ckpt_path={last}: the checkpoint's run used other settings")
    assert "optimizer.lr=0.003 stages.train.lr=0.003" in str(error.value)
    run_config(tmp_path / "again", *FAST, "optimizer.lr=0.003", f"ckpt_path={last}")  # the same settings resume
    run_config(tmp_path / "exported", *FAST, "optimizer.lr=0.003", f"ckpt_path={last}", "export=true")  # and export


REFUSED_TARGET = (
    "not a callable configs may name: qtrain's models, datasets, tasks, schedulers, trackers and torch.optim "
    "optimizers (the list: qtrain/config/targets.py)"
)


@pytest.mark.parametrize(
    "key,target",
    [
        ("model._target_", "builtins.eval"),
        ("model._target_", "torch.load"),  # with weights_only=false it runs a crafted file's code
        ("encoder._target_", "qtrain.predict.export.torch.load"),  # the same callable through a module attribute
        ("dataset._target_", "torchvision.io.read_file"),
    ],
)
def test_a_target_outside_the_allow_list_is_refused(tmp_path, key, target, run_config):
    with pytest.raises(ConfigError) as error:
        run_config(tmp_path, "model=cnn_quantum", "debug=fast", f"{key}={target}")
    assert str(error.value) == f"{key}={target}: {REFUSED_TARGET}"


def test_a_hydra_callback_outside_the_allow_list_is_refused_in_one_line_before_it_is_built(tmp_path, run_cli):
    marker = tmp_path / "ran"
    # Built, it would create `marker`; and the run folder would be made.
    result = run_cli(
        *FAST,
        "+hydra.callbacks.evil._target_=pathlib.Path.touch",
        f"+hydra.callbacks.evil.self={marker}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert (
        result.stdout + result.stderr
    ).strip() == f"hydra.callbacks.evil._target_=pathlib.Path.touch: {REFUSED_TARGET}"
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_every_target_in_the_configs_is_allowed_and_every_allowed_target_exists():
    from hydra.utils import get_method

    from qtrain.config.targets import CONFIG_TARGETS, LAUNCHER_TARGETS, SWEEP_TARGETS

    named = {
        line.split("_target_:")[1].strip()
        for path in CONF.rglob("*.yaml")
        for line in path.read_text().splitlines()
        if "_target_:" in line
    }
    allowed = set(CONFIG_TARGETS + SWEEP_TARGETS + LAUNCHER_TARGETS)  # the sweeper builds its sampler and pruner
    assert named <= allowed, named - allowed
    for target in allowed:
        assert callable(get_method(target)), target


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "+foo=1",
            "foo=1: not a qtrain setting; accepted: seed, train, test, ckpt_path, init_from, export, objective,",
        ),
        ("+stages.train.epoch=3", "stages.train.epoch=3: not a stage setting; did you mean stages.train.epochs?"),
        ("+trainer.limit_epoch=2", "trainer.limit_epoch=2: not a trainer setting; did you mean trainer.limit_epochs?"),
        ("+hardware.tf33=true", "hardware.tf33=True: not a hardware setting; did you mean hardware.tf32?"),
        ("+optimizer.foo=1", "optimizer.foo=1: not an argument of torch.optim.Adam; accepted: params, lr, betas,"),
        ("+optimizer.weight_decy=0.1", "optimizer.weight_decy=0.1: not an argument of torch.optim.Adam; did you mean"),
        (
            "+model.quantum.n_qbits=3",
            (
                "model.quantum.n_qbits=3: not an argument of qtrain.quantum.layer.QuantumLayer; "
                "did you mean model.quantum.n_qubits?"
            ),
        ),
    ],
)
def test_an_added_key_nothing_reads_is_refused_with_the_nearest_name(tmp_path, override, message, run_config):
    with pytest.raises(ConfigError) as error:
        run_config(tmp_path, "model=cnn_quantum", "debug=fast", override)
    assert str(error.value).startswith(message)
    assert not any(tmp_path.iterdir())  # refused before anything is written


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.quantum.feature_map=bogus"], "model.quantum.feature_map=bogus: use one of"),
        (["model.quantum.n_qubits=0"], "model.quantum.n_qubits=0: must be a positive integer"),
        (["model.quantum.backend=bogus"], "model.quantum.backend=bogus: use one of torch, qiskit, aer"),
        (["model.quantum.reps=-1"], "model.quantum.reps=-1: must be an integer >= 0"),
        (["seed=1.5"], "seed=1.5: must be an integer"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1: must be a number >= 0"),
        (["ckpt_path=/etc/hostname"], "ckpt_path=/etc/hostname: not a readable checkpoint: damaged, or not a file"),
        (
            ["dataset=mnist", "dataset.root=/no/such/dir", "dataset.download=false"],
            "dataset.root=/no/such/dir: no mnist IDX files",
        ),
    ],
)
def test_a_refusal_comes_before_the_config_tree_and_any_tracked_run(tmp_path, capsys, overrides, message, run_config):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(ConfigError) as error:
        run_config(
            tmp_path / "run",
            "model=cnn_quantum",
            "debug=fast",
            "tracking=mlflow",
            f"tracking.mlflow.uri={uri}",
            *overrides,
        )
    assert str(error.value).startswith(message)
    shown = capsys.readouterr()
    assert "config" not in shown.err and not shown.out  # no config tree, no summary
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run opened for it


def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path, run_config):
    evil = tmp_path / "last.pt"
    marker = tmp_path / "ran"
    torch.save({"format": "qtrain-checkpoint/4", "payload": RunsCode(marker)}, evil)
    with pytest.raises(ConfigError, match="it holds objects other than tensors and plain values"):
        run_config(tmp_path / "run", *FAST, f"ckpt_path={evil}")
    assert not marker.exists()


class RunsCode:
    """An object whose unpickling would create `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.slow  # two full CLI runs
def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    command = [sys.executable, "-m", "qtrain", *FAST, "tracking=none", "stages.train.epochs=1"]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in "ab"]
    assert [run.wait(timeout=240) for run in runs] == [0, 0]
    folders = sorted(path.parent for path in (tmp_path / "outputs").rglob("metrics.json"))
    assert len(folders) == 2 and folders[0] != folders[1]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=cnn_quantum", "model.quantum.ansatz=qaoa"], "model.quantum.ansatz=qaoa: use one of real_amplitudes"),
        (["model=hybrid_ensemble", "model.quantum.reps=-1"], "model.quantum.reps=-1: must be an integer >= 0"),
        (["model=vit_quantum", "encoder.patch_size=5"], "encoder.patch_size=5: must divide the image size"),
        (["model=vit", "model.patch_size=5"], "model.patch_size=5: must divide the image size"),
        (["model=lstm_signal", "dataset=signal", "model.mode=stateless"], "model.mode=stateless: use one of"),
    ],
)
def test_a_parts_refusal_names_the_config_key_the_user_sets(overrides, message, make_config):
    """The parts name their arguments (`patch_size=5`); the app names the key, under the
    node the part was built from (a hybrid model's encoder comes from the encoder group)."""
    with pytest.raises(ConfigError) as error, execution_whitelist(TRUSTED_TARGETS):
        build(make_config(*overrides).model)
    assert str(error.value).startswith(message)


def test_a_batch_too_large_for_the_circuit_names_the_models_key_while_it_runs(monkeypatch, make_config):
    with execution_whitelist(TRUSTED_TARGETS):
        model = build(make_config("model=cnn_quantum", "model.quantum.n_qubits=16", "dataset.image_size=8").model)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=2**20))
    with pytest.raises(ConfigError) as error, config_keys("model"):
        model(torch.rand(64, 1, 8, 8))
    assert str(error.value).startswith("model.quantum.n_qubits=16: a 16-qubit statevector needs about 192.0 MiB")
