"""What qtrain adds to Hydra's Optuna sweeper: proposals that differ across workers and
resumes, a storage created once, job names and tags, redacted storage URLs."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sqlalchemy.exc import IntegrityError, OperationalError

import qtrain
from qtrain.errors import ConfigError, StorageLost
from qtrain.sweep import storage as storage_module
from qtrain.sweep.plots import write_study_plots
from qtrain.sweep.sampler import TrialSeededTPESampler
from qtrain.sweep.space import model_space
from qtrain.tracking.redact import RedactingFilter, redact
from qtrain.tracking.sweep_job import job_name, swept_keys

CONF = Path(qtrain.CONFIG_DIR)  # the config groups

optuna.logging.set_verbosity(optuna.logging.WARNING)


def propose(study: optuna.Study) -> tuple:
    trial = study.ask()
    return (trial.suggest_float("lr", 1e-4, 1e-2, log=True), trial.suggest_categorical("bs", [32, 64, 128]))


def worker(storage: str, sampler_class) -> optuna.Study:
    """One sweep process on the shared study: its own sampler, seeded with `seed` as the config does."""
    return optuna.create_study(
        study_name="shared", storage=storage, sampler=sampler_class(seed=42), load_if_exists=True
    )


@pytest.mark.parametrize("sampler_class", [TrialSeededTPESampler, optuna.samplers.TPESampler])
def test_two_workers_on_one_study_propose_different_points(tmp_path, sampler_class):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    first, second = worker(storage, sampler_class), worker(storage, sampler_class)
    proposals = [propose(study) for _ in range(4) for study in (first, second)]
    distinct = len({lr for lr, _ in proposals}) == len(proposals)
    # Optuna's TPE seeded alike in each process repeats the other worker's points.
    assert distinct == (sampler_class is TrialSeededTPESampler)


def test_a_resumed_study_explores_new_points_and_a_new_study_repeats_itself(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"

    def sweep(study_name: str) -> list[float]:
        study = optuna.create_study(
            study_name=study_name, storage=storage, sampler=TrialSeededTPESampler(seed=7), load_if_exists=True
        )
        study.optimize(lambda trial: propose_value(trial), n_trials=5)
        return [t.params["lr"] for t in study.trials[-5:]]

    def propose_value(trial):
        return trial.suggest_float("lr", 1e-4, 1e-2, log=True)

    first, resumed = sweep("a"), sweep("a")
    assert not set(first) & set(resumed)
    assert sweep("b") == first  # reproducible: the same seed, a new study, the same points


def test_storage_creation_retries_when_another_sweep_is_creating_the_tables(tmp_path, monkeypatch):
    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError(
                "CREATE TABLE studies", {}, Exception("duplicate key value violates unique constraint")
            )
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = storage_module.study_storage(url)
    assert isinstance(storage.rdb, real) and len(calls) == 2
    assert storage_module.study_storage(url) is storage  # one per URL in a process: its jobs share it


def test_a_storage_without_its_driver_names_the_key_and_the_extra(monkeypatch):
    def no_driver(url, **kwargs):
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(optuna.storages, "RDBStorage", no_driver)
    with pytest.raises(ConfigError) as error:
        storage_module.study_storage("postgresql://optuna:pw@127.0.0.1/optuna")
    assert str(error.value) == (
        "hydra.sweeper.storage=postgresql://optuna:***@127.0.0.1/optuna: its database driver is not installed "
        "(psycopg); for postgresql:// pip install 'qtrain[postgres]'"
    )


def test_an_unreachable_storage_names_the_key():
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.storage=sqlite:////nonexistent/x/optuna.db: cannot open"):
        storage_module.study_storage("sqlite:////nonexistent/x/optuna.db")


def lost_connection() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def flaky(call, failures: int, after=None):
    """`call`, whose first `failures` calls lose the connection (`after` a commit: the
    call's change is made, then its answer is lost)."""
    left = {"n": failures}

    def once(*args, **kwargs):
        if left["n"] > 0:
            left["n"] -= 1
            if after:
                call(*args, **kwargs)
            raise lost_connection()
        return call(*args, **kwargs)

    return once


def test_a_lost_connection_is_waited_for_and_tried_again(tmp_path, monkeypatch, caplog):
    storage = storage_module.study_storage(f"sqlite:///{tmp_path}/optuna.db", 30)
    monkeypatch.setattr(storage.rdb, "create_new_study", flaky(storage.rdb.create_new_study, 2))
    with caplog.at_level(logging.INFO, logger="qtrain"):
        study = optuna.create_study(study_name="s", storage=storage)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]
    waits = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(waits) == 2 and "try 2 in 1 s (waiting up to 30 s in all)" in waits[0]
    assert any("is back after" in r.getMessage() for r in caplog.records)
    # A trial's end whose answer was lost after the commit: the retry finds it set.
    trial = study.ask()
    monkeypatch.setattr(storage.rdb, "set_trial_state_values", flaky(storage.rdb.set_trial_state_values, 1, after=True))
    study.tell(trial, 1.0)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    # A trial created, and the answer lost after the commit: the retry finds it, not a second.
    monkeypatch.setattr(storage.rdb, "create_new_trial", flaky(storage.rdb.create_new_trial, 1, after=True))
    trial = study.ask()
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "COMPLETE"), (1, "RUNNING")]
    assert trial.number == 1 and study.trials[1].datetime_start is not None


def test_a_storage_lost_past_its_limit_is_one_line_naming_the_key(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = storage_module.study_storage(url, 0.5)
    monkeypatch.setattr(storage.rdb, "get_all_studies", flaky(storage.rdb.get_all_studies, 100))
    with pytest.raises(StorageLost) as lost:
        storage.get_all_studies()
    assert str(lost.value) == (
        f"hydra.sweeper.storage={url}: unreachable for 0 s (server closed the connection unexpectedly); "
        "the sweep stopped: run the same command again once the database is back, to go on with it"
    )


def test_jobs_are_named_after_their_swept_values():
    overrides = ["model=simple_cnn", "optimizer.lr=0.0031622776601683794", "dataset.batch_size=64", "debug=fast"]
    assert job_name(overrides, ["optimizer.lr", "dataset.batch_size"]) == "lr=0.00316,batch_size=64"
    assert job_name(["optimizer=sgd", "debug=fast"], ["optimizer"]) == "optimizer=sgd"


def test_the_swept_keys_are_the_command_lines_sweeps_and_the_sweepers_params_the_model_has():
    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["optimizer=adam,sgd", "model=simple_cnn", "seed=range(3)"]},
                "sweeper": {"params": {"optimizer.lr": "interval(1e-4, 1e-2)", "model.quantum.reps": "range(1, 4)"}},
            },
            "optimizer": {"lr": 1e-3},
            "model": {"channels": [32, 64]},
        }
    )
    assert swept_keys(config) == ["optimizer", "seed", "optimizer.lr"]


CIRCUIT = {"model.quantum.n_qubits", "model.quantum.reps", "model.quantum.feature_map"}
KNOBS = {"optimizer.lr", "optimizer.weight_decay", "dataset.batch_size"}


@pytest.mark.parametrize(
    ("search", "model", "searched"),
    [
        ("optuna", "resnet", KNOBS),
        ("optuna", "lstm_signal", KNOBS),
        ("optuna", "cnn_quantum", KNOBS | CIRCUIT),
        ("optuna", "hybrid_ensemble", KNOBS | CIRCUIT),
        ("optuna_quantum", "resnet_quantum", CIRCUIT),
        ("optuna_quantum", "vit_quantum", CIRCUIT),
    ],
)
def test_one_search_space_serves_every_model_with_the_keys_it_has(search, model, searched):
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"hparams_search={search}", f"model={model}"], return_hydra_config=True)
        assert set(model_space(cfg)) == searched
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.sweeper.sampler.seed == cfg.seed
    assert cfg.hydra.sweeper._target_ == "qtrain.sweep.sweeper.QtrainOptunaSweeper"


def test_a_circuit_search_of_a_classical_model_is_refused_with_the_models_that_have_one(options, make_config):
    hybrids = [m for m in options("model") if make_config(f"model={m}").model.get("quantum") is not None]
    assert "cnn_quantum" in hybrids and "resnet" not in hybrids
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose("config", overrides=["hparams_search=optuna_quantum", "model=resnet"], return_hydra_config=True)
        with pytest.raises(ConfigError) as error:
            model_space(cfg)
    assert str(error.value) == (
        "model=resnet: has none of the keys hydra.sweeper.params searches "
        "(model.quantum.n_qubits, model.quantum.reps, model.quantum.feature_map); "
        f"the models that have them: {', '.join(hybrids)}"
    )


@pytest.mark.slow  # a command-line sweep (about 7 s)
def test_on_the_command_line_the_refusal_is_one_line_before_anything_is_written(tmp_path, run_cli):
    result = run_cli(
        "-m", "hparams_search=optuna_quantum", "model=resnet", "tracking=mlflow", "tracking.mlflow.uri=sqlite:///mlflow.db",
        cwd=tmp_path,
    )  # fmt: skip
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("model=resnet: has none of the keys hydra.sweeper.params searches")
    assert list(tmp_path.iterdir()) == []  # no sweep folder, Optuna or MLflow database


def test_a_key_the_models_part_lacks_is_refused_as_a_typo():
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(
            "config",
            overrides=[
                "hparams_search=optuna",
                "model=cnn_quantum",
                '+hydra.sweeper.params={model.quantum.rep:"range(1,3)"}',
            ],
            return_hydra_config=True,
        )
        with pytest.raises(
            ConfigError,
            match=r"^hydra.sweeper.params.model.quantum.rep=range\(1,3\): not a key to "
            r"search; did you mean hydra.sweeper.params.model.quantum.reps\?$",
        ):
            model_space(cfg)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://optuna:s3cret@db.lab:5432/optuna", "postgresql://optuna:***@db.lab:5432/optuna"),
        ("https://bob:tok@mlflow.lab/", "https://bob:***@mlflow.lab/"),
        (
            "postgresql://db/optuna?user=u&password=s3cret&sslmode=require",
            "postgresql://db/optuna?user=u&password=***&sslmode=require",
        ),
        ("sqlite:///optuna.db and http://127.0.0.1:5000", "sqlite:///optuna.db and http://127.0.0.1:5000"),
    ],
)
def test_redact_hides_passwords_and_nothing_else(text, shown):
    assert redact(text) == shown


def test_the_sweepers_storage_line_is_redacted_by_the_logging_filter():
    record = logging.LogRecord(
        "hydra_plugins.hydra_optuna_sweeper._impl",
        logging.INFO,
        __file__,
        1,
        "Storage: %s",
        ("postgresql://u:pw@h/db",),
        None,
    )
    assert RedactingFilter().filter(record) and record.getMessage() == "Storage: postgresql://u:***@h/db"


def test_study_plots_are_history_importance_and_parallel_coordinates(tmp_path):
    study = optuna.create_study(sampler=TrialSeededTPESampler(seed=0))
    study.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True) + t.suggest_int("bs", 32, 128) * 1e-5, n_trials=4
    )
    names = sorted(path.name for path in write_study_plots(study, tmp_path))
    assert names == [
        "optimization_history.html",
        "optimization_history.png",
        "parallel_coordinate.html",
        "parallel_coordinate.png",
        "param_importances.html",
        "param_importances.png",
    ]
    assert all((tmp_path / name).stat().st_size > 1000 for name in names)
