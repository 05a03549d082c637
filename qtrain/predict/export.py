"""`export=true`: the trained model as a `torch.export` program in `<run>/export/model.pt2`.

The program holds the whole model, the quantum head included (the torch simulator is
plain torch), as ATen operations with the weights inside: it loads and runs where torch
is installed, without qtrain: `torch.export.load(path).module()(x)`, with `x` normalized
as `model_info.json` says. The batch dimension is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qtrain.errors import ConfigError
from qtrain.files import atomic_write


def export_model(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Trace `model` in eval mode on `example` (a batch of inputs) and save the program."""
    model.eval()
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    except Exception as error:  # noqa: BLE001 -- tracing fails in many ways; each is one line for the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            "export",
            True,
            f"torch.export cannot trace {type(model).__name__} ({type(error).__name__}: {first_line}); "
            "the run directory is complete without export/",
        ) from None
    with atomic_write(path) as f:
        torch.export.save(program, f)
    return path
