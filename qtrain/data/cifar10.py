"""CIFAR-10 through torchvision (50,000 + 10,000 32x32 colour images), held in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torchvision

from qtrain.data.in_memory import InMemoryImageData, RawSplits
from qtrain.errors import ConfigError


class CIFAR10Data(InMemoryImageData):
    def load(self) -> RawSplits:
        root = Path(self.root or "data").expanduser()
        try:
            train, test = (
                torchvision.datasets.CIFAR10(str(root), train=flag, download=self.download) for flag in (True, False)
            )
        except (OSError, RuntimeError) as error:
            raise ConfigError(
                "dataset.root",
                root,
                f"no CIFAR-10 python batches in {root / 'cifar-10-batches-py'} ({error}). "
                "Point dataset.root at the folder holding cifar-10-batches-py/, or run online with dataset.download=true.",
            ) from None

        def images(dataset) -> np.ndarray:
            return dataset.data.transpose(0, 3, 1, 2).astype(np.float32) / 255.0

        return RawSplits(
            images(train), np.array(train.targets), images(test), np.array(test.targets), list(train.classes)
        )
