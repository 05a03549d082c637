"""Datasets small enough to live as tensors on the training device.

A subclass only reads its files (`load`); this base splits off validation (stratified,
seeded), converts channels, resizes once, normalizes with the training split's
statistics and serves batches through `TensorBatches`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from qtrain.data.batches import BatchAugment, TensorSplits
from qtrain.data.image_data import ImageData
from qtrain.errors import ConfigError


@dataclass
class RawSplits:
    """What a dataset's files hold: images (N, C, H, W) in [0, 1] and integer labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None  # None: the dataset has no official test split
    test_y: np.ndarray | None
    class_names: list[str]


class InMemoryImageData(TensorSplits, ImageData):
    """Base of the in-memory datasets; subclasses implement `load`."""

    def __init__(self, **keys):
        super().__init__(**keys)
        options = dict(self.augment_options)
        self.augment = BatchAugment(**options) if options.pop("enabled", False) else None

    def load(self) -> RawSplits:
        raise NotImplementedError

    def setup(self, device: torch.device | str = "cpu") -> None:
        raw = self.load()
        self.set_classes(raw.class_names)
        train_x, train_y, test_x, test_y = raw.train_x, raw.train_y, raw.test_x, raw.test_y
        if test_x is None:
            train_x, test_x, train_y, test_y = self._split(train_x, train_y, self.test_fraction)
        train_x, val_x, train_y, val_y = self._split(train_x, train_y, self.val_fraction)
        arrays = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
        tensors = {split: (self._images(x), torch.as_tensor(y, dtype=torch.long)) for split, (x, y) in arrays.items()}
        train_images = tensors["train"][0]
        mean = train_images.mean(dim=(0, 2, 3), keepdim=True)
        std = train_images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        self.splits = {split: (((x - mean) / std).to(device), y.to(device)) for split, (x, y) in tensors.items()}
        self.mean, self.std = mean.flatten().tolist(), std.flatten().tolist()

    def _split(self, x: np.ndarray, y: np.ndarray, fraction: float):
        return train_test_split(x, y, test_size=fraction, stratify=y, random_state=self.split_seed)

    def _images(self, x: np.ndarray) -> torch.Tensor:
        images = torch.as_tensor(x, dtype=torch.float32)
        images = convert_channels(images, self.in_channels)
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return images


def convert_channels(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Grayscale to RGB by repetition, RGB to grayscale by the luma weights."""
    channels = images.shape[1]
    if channels == in_channels:
        return images
    if channels == 1:
        return images.expand(-1, in_channels, -1, -1).contiguous()
    if channels == 3 and in_channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    raise ConfigError("dataset.in_channels", in_channels, f"images have {channels} channels; use 1 or 3")
