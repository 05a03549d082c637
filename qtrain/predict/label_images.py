"""`python -m qtrain.predict ckpt_path=<run>/checkpoints/best.pt input=<image file or folder>`:
label new images with a trained classifier, without its training data.

The checkpoint holds everything needed: the model's config (built through the same
allow-list as any config), its weights, the class names and the input's size and
normalization. Writes `predictions.csv` (file, class, then each class's probability)
and `predictions.png` (a grid of the first images with their labels) to the output folder.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import execution_whitelist
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from torch import nn

from qtrain.config import CONFIG_DIR, TRUSTED_TARGETS, stage_settings
from qtrain.data.image_files import image_transform
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.engine.hardware import resolve_device
from qtrain.engine.stages import apply_stage, plan_stages
from qtrain.errors import ConfigError
from qtrain.files import atomic_write
from qtrain.models.build import build, config_keys
from qtrain.reports import plot_predictions

log = logging.getLogger("qtrain")


def trained_model(checkpoint: dict, device: torch.device) -> nn.Module:
    """The checkpoint's model with its weights, set up as its last stage used it."""
    config = OmegaConf.create(checkpoint["config"])
    with execution_whitelist(TRUSTED_TARGETS):
        model = build(config.model)
    model.load_state_dict(checkpoint["model"])
    apply_stage(model, plan_stages(stage_settings(checkpoint["config"]["stages"]), model)[-1])
    return model.to(device).eval()


def image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise ConfigError("input", path, "no such file or folder; give an image file or a folder of images")


def read_images(files: list[Path], transform) -> tuple[list[Path], list[torch.Tensor]]:
    """The files PIL can read, transformed; the others are named in a warning and skipped."""
    kept, images = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(transform(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as error:
            log.warning("skipped %s: not a readable image (%s)", file, type(error).__name__)
            continue
        kept.append(file)
    return kept, images


@torch.no_grad()
def probabilities(model: nn.Module, images: list[torch.Tensor], batch_size: int, device: torch.device) -> torch.Tensor:
    parts = []
    for start in range(0, len(images), batch_size):
        output = model(torch.stack(images[start : start + batch_size]).to(device))
        parts.append(torch.softmax(output["ensemble"] if isinstance(output, dict) else output, dim=1).cpu())
    return torch.cat(parts)


def write_predictions(path: Path, files: list[Path], probs: torch.Tensor, class_names: list[str]) -> None:
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "class", *class_names])
        for file, row in zip(files, probs.tolist()):
            writer.writerow([str(file), class_names[max(range(len(row)), key=row.__getitem__)], *row])


def predict(cfg: DictConfig, out_dir: Path) -> Path:
    device = resolve_device(cfg.device, key="device")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    described = checkpoint["data"]
    inputs = described["input"]
    if inputs["kind"] != "image" or "Classification" not in checkpoint["config"]["task"]["_target_"]:
        raise ConfigError("ckpt_path", cfg.ckpt_path, f"predict labels images; this model takes {inputs['kind']}")
    channels, size, _ = inputs["shape"]
    files, images = read_images(
        image_files(Path(cfg.input).expanduser()), image_transform(channels, size, inputs["mean"], inputs["std"])
    )
    if not images:
        raise ConfigError("input", cfg.input, "holds no readable image (PNG, JPEG, ... as PIL reads them)")
    with config_keys("model"):  # a batch_size too large for the checkpoint's circuit
        probs = probabilities(trained_model(checkpoint, device), images, cfg.batch_size, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", files, probs, described["class_names"])
    shown = min(cfg.grid_images, len(files))
    plot_predictions(out_dir / "predictions.png", files[:shown], probs[:shown], described["class_names"])
    log.info("%d images labelled: %s", len(files), out_dir / "predictions.csv")
    return out_dir / "predictions.csv"


@hydra.main(config_path=CONFIG_DIR, config_name="predict", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg, Path(HydraConfig.get().runtime.output_dir))
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        sys.exit(1)


def cli() -> None:
    main()
