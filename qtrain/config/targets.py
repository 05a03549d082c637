"""The callables a config may name as `_target_`, declared here once, as exact entries: a
pattern such as `torch.*` also admits `torch.load`, and through module attributes
`qtrain.predict.export.torch.load`. None of them loads a file or runs code it is given.
This list is a security boundary: it is never built from conf/, a checkpoint or anything
a user can write. CONFIG_TARGETS is checked, in one line, for every `_target_` of a run's
config (the command line's, or one read back from a checkpoint); every `_target_` under
conf/ is in it (tested). TRUSTED_TARGETS is Hydra's execution whitelist (Hydra
callbacks, logging filters, and a second check of the above)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from qtrain.errors import ConfigError, refuse_in_callback

QTRAIN = (
    "qtrain.config.evaluation.EvaluationCallback",
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
    "qtrain.sweep.sampler.TrialSeededTPESampler",
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


def _timm_model_modules() -> tuple[str, ...]:
    """timm's model modules as package patterns. Hydra also authorizes what a target
    returns when it is callable, by its class: a timm model (timm.models.resnet.ResNet).
    timm's loaders live in its underscore modules (_builder, _helpers, _hub): left out.
    Found without importing timm, so that `--help` stays fast."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return tuple(f"timm.models.{path.stem}.*" for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_"))


TRUSTED_TARGETS = CONFIG_TARGETS + _timm_model_modules()


def check_targets(config: dict, prefix: str = "") -> None:
    """Every `_target_` of `config` (a plain dict) is in CONFIG_TARGETS, or is refused in a
    line (Hydra's whitelist refuses them too, with a traceback)."""
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


def callback_targets(_root_: DictConfig) -> dict:
    """The resolver `${callback_targets:}`: the `_target_` keys of `hydra.callbacks`,
    unresolved and unbuilt (a node cannot interpolate its parent)."""
    return _targets(OmegaConf.to_container(_root_.hydra.callbacks, resolve=False))


def _targets(tree: dict) -> dict:
    kept = {}
    for key, value in tree.items():
        if key == "_target_":
            kept[key] = value
        elif isinstance(value, dict) and (inner := _targets(value)):
            kept[key] = inner
    return kept


class TrustedCallbacks(Callback):
    """Hydra builds `hydra.callbacks` before any of qtrain runs, and refuses a `_target_`
    outside its whitelist with a 30-line traceback. This callback is listed first and is
    handed their `_target_` keys unbuilt (`${callback_targets:}`, `_recursive_: false`):
    it refuses an untrusted one in one line, before Hydra would build it."""

    def __init__(self, targets: dict):
        try:
            check_targets(targets, "hydra.callbacks.")
        except ConfigError as error:
            refuse_in_callback(error)
