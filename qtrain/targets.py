"""The callables a config may name as `_target_`: Hydra's execution whitelist, as exact
entries (a pattern such as `torch.*` also admits `torch.load`, and through module
attributes `qtrain.export.torch.load`). The same list guards the command line, configs
read back from checkpoints, predict and Hydra callbacks; none of its entries loads a
file or runs code it is given. Every `_target_` under conf/ is here (tested)."""

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
    "qtrain.sweep.sampler.TrialSeededTPESampler",
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

TRUSTED_TARGETS = QTRAIN + OPTIMIZERS
