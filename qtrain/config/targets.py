"""The callables a config may name as `_target_`, declared once, as exact entries (a
pattern such as `torch.*` would admit `torch.load`). None loads a file or runs code it
is given. A security boundary: never built from conf/, a checkpoint or anything a user
writes. Every `_target_` of a run's config, or of a checkpoint's, is checked against
CONFIG_TARGETS in one line; TRUSTED_TARGETS is Hydra's execution whitelist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from qtrain.errors import ConfigError, refuse_in_callback

QTRAIN = (
    "qtrain.config.targets.TrustedCallbacks",
    "qtrain.data.cifar10.CIFAR10Data",
    "qtrain.data.digits.DigitsData",
    "qtrain.data.features.FeatureData",
    "qtrain.data.idx.FashionMNISTData",
    "qtrain.data.idx.MNISTData",
    "qtrain.data.image_csv.ImageCsvData",
    "qtrain.data.image_folder.ImageFolderData",
    "qtrain.data.signal.SignalData",
    "qtrain.engine.run_directory.RunDirectoryCallback",
    "qtrain.engine.schedulers.constant",
    "qtrain.engine.schedulers.cosine",
    "qtrain.engine.schedulers.onecycle",
    "qtrain.engine.schedulers.plateau",
    "qtrain.engine.schedulers.step",
    "qtrain.engine.schedulers.warmup_cosine",
    "qtrain.models.ensemble.HybridEnsemble",
    "qtrain.models.hybrid.HybridClassifier",
    "qtrain.models.lstm_signal.LSTMSignal",
    "qtrain.models.simple_cnn.SimpleCNN",
    "qtrain.models.timm_models.create_timm_model",
    "qtrain.models.timm_models.resnet",
    "qtrain.models.timm_models.vit",
    "qtrain.sweep.launches.ContinueSweepCallback",
    "qtrain.sweep.space.SearchSpaceCallback",
    "qtrain.sweep.sweeper.QtrainOptunaSweeper",
    "qtrain.sweep.storage.OptunaStorageCallback",
    "qtrain.tasks.Classification",
    "qtrain.tasks.Regression",
    "qtrain.tracking.console.ConfigTreeCallback",
    "qtrain.tracking.mlflow_run.MlflowTracker",
    "qtrain.tracking.mlflow_sweep.MlflowSweepCallback",
    "qtrain.tracking.redact.RedactingFilter",
    "qtrain.tracking.tensorboard_run.TensorBoardTracker",
)

# torch's optimizers: optimizer._target_=torch.optim.NAdam works as users expect.
OPTIMIZERS = tuple(
    f"torch.optim.{name}"
    for name in (
        "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam", "RAdam", "RMSprop",
        "Rprop", "SGD",
    )
)  # fmt: skip

CONFIG_TARGETS = QTRAIN + OPTIMIZERS

# What `hydra/sweeper/sampler` and `hydra/sweeper/pruner` may build (the upstream
# plugin's sampler presets among them).
SWEEP_TARGETS = (
    *(f"optuna.samplers.{name}" for name in ("TPESampler", "RandomSampler", "CmaEsSampler", "GridSampler")),
    *(f"optuna.samplers.{name}" for name in ("GPSampler", "QMCSampler", "NSGAIISampler", "NSGAIIISampler")),
    "hydra_plugins.hydra_optuna_sweeper._impl.create_nsgaii_sampler",
    "hydra_plugins.hydra_optuna_sweeper._impl.create_nsgaiii_sampler",
    "hydra_plugins.hydra_optuna_sweeper.config.raise_motpe_removed",
    "qtrain.sweep.sampler.TrialSeededTPESampler",
    *(f"optuna.pruners.{name}" for name in ("NopPruner", "MedianPruner", "HyperbandPruner")),
    *(f"optuna.pruners.{name}" for name in ("SuccessiveHalvingPruner", "PercentilePruner", "PatientPruner")),
)

# The launcher presets of conf/hydra/launcher, built by Hydra's plugin loader.
LAUNCHER_TARGETS = (
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
)


def _timm_model_modules() -> tuple[str, ...]:
    """timm's model modules, whose classes Hydra also authorizes (a target's callable result),
    not its loaders (_builder, _hub); found without importing timm (fast `--help`)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return tuple(f"timm.models.{path.stem}.*" for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_"))


TRUSTED_TARGETS = CONFIG_TARGETS + _timm_model_modules()


def check_targets(config: dict, prefix: str = "") -> None:
    """Every `_target_` in `config` (plain values) is in CONFIG_TARGETS, or is refused."""
    for key, value in config.items():
        if key == "_target_" and value not in CONFIG_TARGETS:
            raise ConfigError(
                f"{prefix}_target_",
                value,
                "not a callable configs may name: qtrain's models, datasets, tasks, schedulers, trackers "
                "and torch.optim optimizers (the list: qtrain/config/targets.py)",
            )
        if isinstance(value, dict):
            check_targets(value, f"{prefix}{key}.")


def callback_targets(_root_: DictConfig, tree: dict | None = None) -> dict:
    """`${callback_targets:}`: the `_target_` keys of `hydra.callbacks`, where they are,
    unresolved (a node cannot interpolate its parent; their other values may not resolve yet)."""
    tree = OmegaConf.to_container(_root_.hydra.callbacks, resolve=False) if tree is None else tree
    kept = {key: value for key, value in tree.items() if key == "_target_"}
    inner = {key: callback_targets(_root_, value) for key, value in tree.items() if isinstance(value, dict)}
    return kept | {key: value for key, value in inner.items() if value}


class TrustedCallbacks(Callback):
    """Listed first among `hydra.callbacks` and handed them unbuilt (`_recursive_: false`):
    refuses an untrusted `_target_` in one line, before Hydra builds it (with a traceback)."""

    def __init__(self, targets: dict):
        try:
            check_targets(targets, "hydra.callbacks.")
        except ConfigError as error:
            refuse_in_callback(error)
