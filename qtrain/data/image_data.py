"""What every image dataset is: the config keys it takes and the interface the trainer uses."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from qtrain.errors import ConfigError


class ImageData:
    """The keys of every `dataset` config. `setup` reads the data; then `size`,
    `train_batches` and `eval_batches` serve (x, y) batches of the splits
    "train", "val" and "test". Constructors only store: Hydra wraps errors raised
    while instantiating, so checks of the data happen in `setup`."""

    def __init__(
        self,
        name: str,
        num_classes: int,
        in_channels: int,
        image_size: int,
        batch_size: int,
        root: str | None = None,
        download: bool = False,
        split_seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        augment: dict | None = None,
    ):
        self.name, self.num_classes, self.in_channels = name, num_classes, in_channels
        self.image_size, self.batch_size = image_size, batch_size
        self.root, self.download = root, download
        self.split_seed, self.val_fraction, self.test_fraction = split_seed, val_fraction, test_fraction
        self.augment_options = dict(augment or {})
        self.class_names: list[str] = []
        self.mean: list[float] = []  # per channel, what `setup` normalizes the images with
        self.std: list[float] = []

    def setup(self, device: torch.device | str = "cpu") -> None:
        raise NotImplementedError

    def size(self, split: str) -> int:
        raise NotImplementedError

    def train_batches(
        self, epoch: int, skip: int = 0, limit: int | None = None, shard: tuple[int, int] = (0, 1)
    ) -> Iterable:
        """The training batches of `epoch` in an order fixed by (split_seed, epoch),
        without the first `skip`, at most `limit` of them; with `shard` (rank, world
        size), only this process's part of the epoch (batches.shard_order)."""
        raise NotImplementedError

    def eval_batches(self, split: str, limit: int | None = None) -> Iterable:
        raise NotImplementedError

    def input_info(self) -> dict:
        """What a model trained on this data takes: (channels, height, width) images,
        normalized per channel as `(x - mean) / std` after scaling pixels to [0, 1]."""
        return {
            "kind": "image",
            "shape": [self.in_channels, self.image_size, self.image_size],
            "mean": self.mean,
            "std": self.std,
        }

    def set_classes(self, class_names: list[str]) -> None:
        """The classes `setup` found in the data; `num_classes` must count them."""
        found = len(class_names)
        if self.num_classes != found:
            raise ConfigError(
                "dataset.num_classes", self.num_classes, f"the {self.name} data has {found} classes; set {found}"
            )
        self.class_names = list(class_names)
