"""The trained model as an MLflow PyTorch model (`tracking.log_model=true`): an
artifact folder `model/` that `mlflow.pytorch.load_model("runs:/<run id>/model")`
loads, with an input example and the signature inferred from it."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import mlflow.pytorch
import torch
from mlflow import MlflowClient
from mlflow.models import infer_signature

ARTIFACT = "model"


def log_pytorch_model(client: MlflowClient, run_id: str, model: torch.nn.Module, example: torch.Tensor) -> None:
    model = copy.deepcopy(model).cpu().eval()  # the run's own model stays where it is
    example = example[:2].cpu()
    with torch.no_grad():
        output = model(example)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ARTIFACT
        mlflow.pytorch.save_model(
            model,
            str(path),
            signature=infer_signature(example.numpy(), output.numpy()),
            input_example=example.numpy(),
            # Inferring requirements loads the model again in a subprocess; what it needs is
            # torch, and qtrain for the classes the pickled model refers to.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "qtrain"],
        )
        client.log_artifacts(run_id, str(path), ARTIFACT)
