"""A folder of images, one sub-folder per class (the retinopathy layout), read by workers.

Either `root/<class>/*` (validation and test split off, stratified and seeded) or
`root/train/<class>/*` with optional `root/val/` and `root/test/` beside it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Sampler, Subset
from torchvision import datasets
from torchvision.transforms import v2

from qtrain.data.batches import epoch_permutation, shard_order
from qtrain.data.image_data import ImageData
from qtrain.errors import ConfigError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT = "one sub-folder of images per class, or train/ (and optional val/, test/) folders of those"


class PassOrder(Sampler[int]):
    """The sample indices of the next pass over a split, set before each pass: one
    DataLoader per split then lives for the whole run, and so do its workers
    (`persistent_workers`), instead of new processes every epoch."""

    def __init__(self):
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ImageFolderData(ImageData):
    def __init__(
        self,
        mean: list[float] = IMAGENET_MEAN,
        std: list[float] = IMAGENET_STD,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        **keys,
    ):
        super().__init__(**keys)
        self.mean, self.std = list(mean)[: self.in_channels], list(std)[: self.in_channels]
        self.num_workers, self.pin_memory, self.persistent_workers = num_workers, pin_memory, persistent_workers
        self.splits: dict[str, Subset] = {}
        self.loaders: dict[str, DataLoader] = {}

    def _transform(self, train: bool) -> v2.Compose:
        size = self.image_size
        steps = [v2.ToImage(), v2.Grayscale() if self.in_channels == 1 else v2.RGB()]
        if train and self.augment_options.get("enabled", False):
            steps += [
                v2.RandomResizedCrop(size, scale=(1 - self.augment_options.get("scale", 0.2), 1.0), antialias=True)
            ]
            steps += [v2.RandomRotation(self.augment_options.get("rotate_deg", 0.0))]
            steps += [v2.RandomHorizontalFlip()] if self.augment_options.get("hflip", False) else []
        else:
            steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        return v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)])

    def _folder(self, path: Path, train: bool) -> datasets.ImageFolder:
        try:
            return datasets.ImageFolder(str(path), transform=self._transform(train))
        except (FileNotFoundError, OSError) as error:
            raise ConfigError("dataset.root", self.root, f"{error}; expected {LAYOUT}") from None

    def setup(self, device: torch.device | str = "cpu") -> None:
        if self.download:
            raise ConfigError("dataset.download", self.download, "an image folder cannot be downloaded; use false")
        root = Path(self.root or "").expanduser()
        if not self.root or not root.is_dir():
            raise ConfigError("dataset.root", self.root, f"no such folder; point it at {LAYOUT}")
        base = root / "train" if (root / "train").is_dir() else root
        train_view, eval_view = self._folder(base, True), self._folder(base, False)
        self.check_num_classes(len(train_view.classes))
        self.class_names = train_view.classes
        indices = list(range(len(train_view.targets)))
        targets = train_view.targets
        held_out = {}
        for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            folder = root / split
            if base != root and folder.is_dir():
                view = self._folder(folder, False)
                if view.classes != train_view.classes:
                    raise ConfigError(
                        "dataset.root", root, f"{folder} has classes {view.classes}, train/ has {train_view.classes}"
                    )
                held_out[split] = Subset(view, range(len(view)))
                continue
            indices, split_indices = train_test_split(
                indices, test_size=fraction, stratify=[targets[i] for i in indices], random_state=self.split_seed
            )
            held_out[split] = Subset(eval_view, split_indices)
        self.splits = {"train": Subset(train_view, indices), **held_out}
        self.loaders = {split: self._loader(dataset) for split, dataset in self.splits.items()}

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def _loader(self, dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=PassOrder(),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def _pass(self, split: str, indices: list[int]) -> DataLoader:
        loader = self.loaders[split]
        loader.sampler.indices = indices
        return loader

    def train_batches(
        self, epoch: int, skip: int = 0, limit: int | None = None, shard: tuple[int, int] = (0, 1)
    ) -> DataLoader:
        order = shard_order(epoch_permutation(self.size("train"), self.split_seed, epoch), shard).tolist()
        end = None if limit is None else limit * self.batch_size
        return self._pass("train", order[skip * self.batch_size : end])

    def eval_batches(self, split: str, limit: int | None = None) -> DataLoader:
        end = self.size(split) if limit is None else min(self.size(split), limit * self.batch_size)
        return self._pass(split, list(range(end)))
