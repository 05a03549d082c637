"""TensorBoard event files in the run directory: per-epoch scalars under the names
MLflow shows, the config and final metrics in the HParams dashboard, the plots as
images. `make tensorboard` browses every run under outputs/ and multirun/."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from qtrain.config.schema import flatten
from qtrain.tracking.redact import redact
from qtrain.tracking.tracker import Tracker, numbers_of


class TensorBoardTracker(Tracker):
    def __init__(self, log_dir: str = "tensorboard"):
        self.log_dir = log_dir
        self.writer: SummaryWriter | None = None
        self.hparams: dict = {}

    def begin(self, config: dict, run_dir: Path) -> None:
        self.writer = SummaryWriter(str(run_dir / self.log_dir))
        self.hparams = hparam_values(config)
        self.writer.add_text("config", "```\n" + redact(OmegaConf.to_yaml(config)) + "\n```")

    def log_epoch(self, row: dict) -> None:
        for name, value in numbers_of(row).items():
            if name != "step":
                self.writer.add_scalar(name, value, row["step"])

    def log_results(self, metrics: dict[str, float], run_dir: Path) -> None:
        final = numbers_of(metrics)
        # The three summaries add_hparams writes, but into this run's own event file:
        # add_hparams itself opens a second writer in a timestamped subfolder.
        for summary in hparams(self.hparams, final):
            self.writer.file_writer.add_summary(summary)
        for name, value in final.items():
            self.writer.add_scalar(name, value)
        for plot in sorted((run_dir / "plots").glob("*.png")):
            image = np.asarray(Image.open(plot).convert("RGB"))
            self.writer.add_image(f"plots/{plot.stem}", image, dataformats="HWC")
        self.writer.flush()

    def end(self, status: str) -> None:
        if self.writer is not None:
            self.writer.add_text("status", status)
            self.writer.close()


def hparam_values(config: dict) -> dict[str, float | int | str | bool]:
    """The config's plain values as dotted keys; TensorBoard takes numbers, text and booleans."""
    flat = flatten(config)
    return {
        key: redact(value) if isinstance(value, str) else value if isinstance(value, numbers.Real) else str(value)
        for key, value in flat.items()
    }
