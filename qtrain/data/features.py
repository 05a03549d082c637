"""Features of a frozen encoder, computed once and served like the image datasets
(the same batch order for a given seed and epoch, no augmentation).

A staged run with `cache_features: true` trains its heads on these and exports them
as `<run>/features.pt`; `dataset=features dataset.path=<run>/features.pt` trains a
head-only model on them later, without the encoder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from qtrain.data.batches import TensorSplits
from qtrain.errors import ConfigError
from qtrain.files import load_tagged, save_tagged

log = logging.getLogger("qtrain")

FORMAT = "qtrain-features/1"
ACCEPTED = "give the <run>/features.pt of a run whose stage cached its features (stages.<name>.cache_features=true)"
SPLITS = ("train", "val", "test")


class FeatureData(TensorSplits):
    def __init__(
        self,
        path: str | None,
        num_classes: int,
        num_features: int,
        batch_size: int,
        split_seed: int = 0,
        name: str = "features",
    ):
        self.path, self.name = path, name
        self.num_classes, self.num_features = num_classes, num_features
        self.batch_size, self.split_seed = batch_size, split_seed
        self.splits, self.class_names = {}, []

    @classmethod
    def of(cls, splits: dict, class_names: list[str], batch_size: int, split_seed: int) -> FeatureData:
        """Features already computed: `splits` maps train/val/test to (features, labels)."""
        features = splits["train"][0]
        data = cls(None, len(class_names), features.shape[1], batch_size, split_seed)
        data.splits, data.class_names = splits, class_names
        return data

    def setup(self, device: torch.device | str = "cpu") -> None:
        path = Path(self.path or "").expanduser()
        if not path.is_file():
            raise ConfigError("dataset.path", self.path, f"no such file; {ACCEPTED}")
        try:
            saved = load_tagged(path, FORMAT, "features file")
        except ValueError as why:
            raise ConfigError("dataset.path", self.path, f"{why}; {ACCEPTED}") from None
        self.splits = {split: (x.to(device), y.to(device)) for split, (x, y) in saved["splits"].items()}
        self.class_names = saved["class_names"]
        for key, expected, found in (
            ("dataset.num_classes", self.num_classes, len(self.class_names)),
            ("dataset.num_features", self.num_features, self.splits["train"][0].shape[1]),
        ):
            if expected != found:
                raise ConfigError(key, expected, f"{path} holds {found}; set {key}={found}")

    def input_info(self) -> dict:
        return {"kind": "features", "shape": [self.num_features]}

    def save(self, path: Path) -> None:
        cpu = {split: (x.cpu(), y.cpu()) for split, (x, y) in self.splits.items()}
        save_tagged(path, FORMAT, {"splits": cpu, "class_names": self.class_names})


@torch.no_grad()
def compute_features(extract, data, device: torch.device, save_to: Path | None) -> FeatureData:
    """`extract(x)` over every split of `data`, in order and without augmentation,
    served as FeatureData (and saved to `save_to`)."""
    started = time.perf_counter()
    splits = {}
    for split in SPLITS:
        parts = [(extract(x.to(device)), y.to(device)) for x, y in data.eval_batches(split)]
        splits[split] = (torch.cat([f for f, _ in parts]).float(), torch.cat([y for _, y in parts]))
    features = FeatureData.of(splits, data.class_names, data.batch_size, data.split_seed)
    if save_to is not None:
        features.save(save_to)
    log.info(
        "%d features per sample computed for %s samples in %.1fs",
        features.num_features,
        "/".join(str(features.size(s)) for s in SPLITS),
        time.perf_counter() - started,
    )
    return features
