"""The callables a config may name as `_target_`, as exact entries: a pattern such as
`torch.*` also admits `torch.load`, and through module attributes
`qtrain.export.torch.load`. None of them loads a file or runs code it is given.
CONFIG_TARGETS is checked, in one line, for every `_target_` of a run's config (the
command line's, or one read back from a checkpoint); every `_target_` under conf/ is
in it (tested). TRUSTED_TARGETS is Hydra's execution whitelist (Hydra callbacks,
logging filters, and a second check of the above)."""

import importlib.util
from pathlib import Path

QTRAIN = (
    "qtrain.data.cifar10.CIFAR10Data",
    "qtrain.data.digits.DigitsData",
    "qtrain.data.features.FeatureData",
    "qtrain.data.idx.FashionMNISTData",
    "qtrain.data.idx.MNISTData",
    "qtrain.data.image_csv.ImageCsvData",
    "qtrain.data.image_folder.ImageFolderData",
    "qtrain.data.signal.SignalData",
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
    "qtrain.run_directory.RunDirectoryCallback",
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
    "qtrain.trusted_callbacks.TrustedCallbacks",
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
