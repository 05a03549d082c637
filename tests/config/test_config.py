"""Every option of every config group composes and instantiates; the CLI behaves like a Hydra app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig, OmegaConf

import qtrain
from qtrain import TRUSTED_TARGETS
from qtrain.config import schema as config_schema
from qtrain.config.checks import check_keys
from qtrain.engine.hardware import resolve_device
from qtrain.engine.trainable import HeadedModel, TrainableModel
from qtrain.errors import ConfigError
from qtrain.tasks import TASKS, Task
from qtrain.tracking.tracker import Tracker

CONF = Path(qtrain.CONFIG_DIR)  # the config groups
ROOT = Path(qtrain.CONFIG_DIR).parent  # the repository

GROUPS = [
    "task",
    "dataset",
    "encoder",
    "model",
    "quantum",
    "optimizer",
    "scheduler",
    "stages",
    "hardware",
    "tracking",
    "debug",
]
# Where a group is chosen from the CLI: the quantum presets are mounted in the hybrid models.
CHOICE_KEYS = {"quantum": "quantum@model.quantum"}
# image_folder has no default location or class count, features no file: the user must say them
REQUIRED = {
    "dataset=image_folder": ["dataset.root=/tmp/images", "dataset.num_classes=3"],
    "dataset=image_csv": ["dataset.root=/tmp/images", "dataset.csv=/tmp/labels.csv", "dataset.num_classes=3"],
    # an encoder belongs to a hybrid model; timm takes any timm model name
    "encoder=timm": ["model=cnn_quantum", "encoder.name=resnet10t"],
    "dataset=features": ["dataset.path=/tmp/features.pt"],
    "model=ensemble_heads": ["dataset=features", "dataset.path=/tmp/features.pt"],
    "model=lstm_signal": ["dataset=signal"],
}


def assert_the_trainer_can_drive(model) -> None:
    """Every model is what the trainer asks for (qtrain.engine.trainable); one with named
    heads is a HeadedModel, whose masks, cached features and ensemble weights the stages use."""
    assert isinstance(model, TrainableModel)
    has_heads = isinstance(getattr(model, "heads", None), torch.nn.ModuleDict)
    assert isinstance(model, HeadedModel) == has_heads
    if has_heads:
        assert model.active_heads == list(model.heads) and set(model.ensemble_weights()) == set(model.heads)


@pytest.mark.parametrize("group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))])
def test_every_option_composes_and_instantiates(group, option, make_config):
    override = f"{CHOICE_KEYS.get(group, group)}={option}"
    hybrid = ["model=cnn_quantum"] if group in ("encoder", "quantum") else []
    cfg = make_config(override, *REQUIRED.get(override, hybrid))
    check_keys(OmegaConf.to_container(cfg))  # every key of every option is one qtrain reads
    with execution_whitelist(TRUSTED_TARGETS):
        if group == "dataset":
            data = instantiate(cfg.dataset)
            assert data.batch_size == cfg.dataset.batch_size
            assert getattr(data, "num_classes", None) == cfg.dataset.get("num_classes")  # signal has none
        elif option == "lstm_signal":
            model = instantiate(cfg.model)
            assert model(torch.randn(2, 7, 1 + len(cfg.dataset.frequencies))).shape == (2, 7)
            assert_the_trainer_can_drive(model)
        elif group == "encoder":
            model = instantiate(cfg.model)
            assert model.encoder.num_features == model.head.compress.in_features  # the encoder group's choice
            x = torch.randn(2, cfg.dataset.in_channels, cfg.dataset.image_size, cfg.dataset.image_size)
            assert model(x).shape == (2, cfg.dataset.num_classes)
        elif group == "model":
            model = instantiate(cfg.model)
            if option == "ensemble_heads":
                x = torch.randn(2, cfg.dataset.num_features)
            else:
                x = torch.randn(2, cfg.dataset.in_channels, cfg.dataset.image_size, cfg.dataset.image_size)
            output = model(x)
            logits = output["ensemble"] if isinstance(output, dict) else output
            assert logits.shape == (2, cfg.dataset.num_classes)
            assert_the_trainer_can_drive(model)
        elif group == "quantum":
            text = yaml.safe_load((CONF / "quantum" / f"{option}.yaml").read_text())
            preset = {k: v for k, v in text.items() if k not in ("defaults", "n_qubits", "seed")}
            assert {k: cfg.model.quantum[k] for k in preset} == preset  # the preset's circuit
            model = instantiate(cfg.model)
            assert model.head.quantum.circuit.num_qubits == cfg.model.quantum.n_qubits == 6  # cnn_quantum's width
            x = torch.randn(2, cfg.dataset.in_channels, cfg.dataset.image_size, cfg.dataset.image_size)
            assert model(x).shape == (2, cfg.dataset.num_classes)
        elif group in ("optimizer", "scheduler"):
            params = [torch.nn.Parameter(torch.zeros(3))]
            optimizer = instantiate(cfg.optimizer)(params, lr=0.1)
            assert optimizer.param_groups[0]["lr"] == 0.1
            scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=20, steps_per_epoch=4)
            for _ in range(20):
                optimizer.step()
                scheduler.step(0.5) if option == "plateau" else scheduler.step()
            assert optimizer.param_groups[0]["lr"] > 0
        elif group == "stages":
            assert isinstance(cfg.stages, DictConfig) and all(s.epochs > 0 for s in cfg.stages.values())
        elif group == "hardware":
            if cfg.hardware.device == "cuda" and not torch.cuda.is_available():
                with pytest.raises(ConfigError, match="hardware.device=cuda: torch sees no CUDA GPU"):
                    resolve_device(cfg.hardware.device)
            else:
                assert resolve_device(cfg.hardware.device).type in ("cpu", "cuda")
        elif group == "tracking":
            trackers = [instantiate(t) for t in cfg.tracking.values()]
            assert len(trackers) == (option != "none") and all(isinstance(t, Tracker) for t in trackers)
        elif group == "task":
            task = instantiate(cfg.task)
            assert isinstance(task, Task) and cfg.trainer.monitor in task.monitors()
            assert cfg.objective == f"{cfg.trainer.monitor}_best"
        elif group == "debug":
            tracked = qtrain.compose([override])  # make_config turns tracking off itself
            assert not tracked.tracking and cfg.hardware.num_workers == 0  # debug/default, in every preset
            if option == "fast":
                assert cfg.trainer.limit_epochs == 1 and cfg.trainer.limit_train_batches > 0
            elif option == "overfit":
                assert cfg.trainer.overfit_batches > 0 and cfg.trainer.limit_epochs is None
            elif option == "profile":
                assert cfg.hardware.profile and cfg.trainer.limit_epochs == 1


def test_stage_length_is_set_from_the_cli(make_config):
    cfg = make_config("stages.train.epochs=5", "optimizer.lr=0.01")
    assert cfg.stages.train.epochs == 5
    assert cfg.stages.train.lr == 0.01  # a stage's lr follows the optimizer's unless set


def test_models_read_shapes_from_the_dataset(make_config):
    cfg = make_config("dataset=cifar10", "model=resnet")
    assert (cfg.model.num_classes, cfg.model.in_channels) == (10, 3)


def test_help_lists_groups_and_options(tmp_path, run_cli, options):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for group in GROUPS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"{group}:"))
        assert set(line.split(":", 1)[1].replace(",", " ").split()) == set(options(group))


def test_cfg_job_prints_the_composed_config(tmp_path, run_cli):
    result = run_cli("--cfg", "job", "model=resnet", "optimizer.lr=0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    assert job["model"]["_target_"] == "qtrain.models.timm_models.resnet"
    assert job["optimizer"]["lr"] == 0.5


def test_tab_completion_offers_group_options(tmp_path, options):
    qtrain = ROOT / ".venv" / "bin" / "qtrain"
    command = [str(qtrain)] if qtrain.exists() else [sys.executable, "-m", "qtrain"]
    env = {**os.environ, "COMP_LINE": "qtrain model="}
    result = subprocess.run(
        [*command, "-sc", "query=bash"], env=env, capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert set(result.stdout.split()) == {f"model={o}" for o in options("model")}


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.quantum.ansatz=qaoa", "model.quantum.ansatz=qaoa: use one of real_amplitudes, efficient_su2"),
        ("model.quantum.reps=two", "model.quantum.reps=two: must be an integer"),
        ("model.quantum.shots=many", "model.quantum.shots=many: must be an integer or null"),
        ("hardware.amp=fp8", "hardware.amp=fp8: use null, auto, bf16 or fp16"),
        ("hardware.backend=mpi", "hardware.backend=mpi: use one of auto, gloo, nccl"),
        ("hardware.tf32=maybe", "hardware.tf32=maybe: must be true or false"),
        ("trainer.monitor_mode=up", "trainer.monitor_mode=up: use one of max, min"),
        ("stages.train.lr=fast", "stages.train.lr=fast: must be a number"),
        ("stages.train.trainable=5", "stages.train.trainable=5: must be a list or null"),
        ("stages.train.epoch=3", "stages.train.epoch=3: not a stage setting; did you mean stages.train.epochs?"),
        ("hardware.tf33=true", "hardware.tf33=true: not a hardware setting; did you mean hardware.tf32?"),
    ],
)
def test_a_value_of_the_wrong_type_or_choice_is_refused_by_composition_in_a_line(override, message, make_config):
    """The schemas (qtrain.config.schema) refuse while Hydra composes, before any job starts."""
    with pytest.raises(ConfigError) as error:
        make_config("model=cnn_quantum", override)
    assert str(error.value) == message


def test_a_schema_refusal_on_the_command_line_is_one_line_and_exit_1(tmp_path, run_cli):
    result = run_cli("model=cnn_quantum", "hardware=cpu", "model.quantum.dtype=float16", cwd=tmp_path)
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip() == "model.quantum.dtype=float16: use one of float32, float64"
    assert not any(tmp_path.iterdir())


def test_a_sweeps_schema_refusal_is_one_line_before_its_first_trial(tmp_path, run_cli):
    result = run_cli("-m", "hardware.amp=fp8,bf16", "seed=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip() == "hardware.amp=fp8: use null, auto, bf16 or fp16"
    assert not (tmp_path / "sweep").exists()


def test_every_preset_of_a_schema_group_is_typed_by_its_schema(options, make_config):
    for hardware in options("hardware"):
        assert OmegaConf.get_type(make_config(f"hardware={hardware}").hardware) is config_schema.Hardware
    for preset in options("quantum"):
        cfg = make_config("model=hybrid_ensemble", f"quantum@model.quantum={preset}")
        assert OmegaConf.get_type(cfg.model.quantum) is config_schema.Quantum
    cfg = make_config("model=hybrid_ensemble", "stages=classical_quantum_ensemble")
    assert {OmegaConf.get_type(stage) for stage in cfg.stages.values()} == {config_schema.Stage}
    assert OmegaConf.get_type(cfg.trainer) is config_schema.Trainer


def test_the_schemas_choices_are_what_the_parts_accept():
    """The schemas spell the choices out (importing the parts would load torch before
    --help); this keeps the two lists one."""
    from qtrain.engine.hardware import AMP_DTYPES
    from qtrain.quantum import circuits, layer

    def names(choice):
        return [member.value for member in choice]

    assert names(config_schema.FeatureMap) == list(circuits.FEATURE_MAPS)
    assert names(config_schema.Ansatz) == list(circuits.ANSATZE)
    assert names(config_schema.Entanglement) == list(circuits.ENTANGLEMENTS)
    assert names(config_schema.Dtype) == list(layer.DTYPES)
    assert names(config_schema.Amp) == ["auto", *AMP_DTYPES]
    assert {mode for task in TASKS.values() for mode in task.directions.values()} == set(
        names(config_schema.MonitorMode)
    )


def test_the_config_boundary_imports_without_torch_or_qiskit():
    """`python -m qtrain --help` composes through qtrain.config alone: it stays fast."""
    code = "import sys, qtrain, qtrain.config; print(sorted({'torch', 'qiskit'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
