"""Datasets of image files read by DataLoader workers: the splits, transforms and loaders
that an image folder and an image CSV share.

A subclass says which files there are (`read_samples`): the class names and the
(path, label) samples of the train split, and of the val and test splits when the
data has them. Splits it does not have are taken from the train samples, stratified
and seeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from qtrain.data.batches import epoch_permutation, shard_order
from qtrain.data.image_data import ImageData
from qtrain.errors import ConfigError

log = logging.getLogger("qtrain")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

Sample = tuple[Path, int]


@dataclass
class FileSplits:
    """What a subclass found: class names and samples per split ("val", "test" optional)."""

    class_names: list[str]
    samples: dict[str, list[Sample]] = field(default_factory=dict)


class LabeledImages(Dataset):
    """Image files with integer labels, each read with PIL and transformed."""

    def __init__(self, samples: list[Sample], transform):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        with Image.open(path) as image:
            return self.transform(image.convert("RGB")), label


def _opens(path: Path) -> bool:
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


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


def image_transform(in_channels: int, image_size: int, mean, std, augment: dict | None = None) -> v2.Compose:
    """PIL image -> normalized (in_channels, image_size, image_size) tensor. Without
    `augment` (evaluation, prediction): resize the short side and crop the centre."""
    steps = [v2.ToImage(), v2.Grayscale() if in_channels == 1 else v2.RGB()]
    if augment:
        steps += [v2.RandomResizedCrop(image_size, scale=(1 - augment.get("scale", 0.2), 1.0), antialias=True)]
        steps += [v2.RandomRotation(augment.get("rotate_deg", 0.0))]
        steps += [v2.RandomHorizontalFlip()] if augment.get("hflip", False) else []
    else:
        steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class ImageFilesData(ImageData):
    def __init__(
        self,
        mean: list[float] = IMAGENET_MEAN,
        std: list[float] = IMAGENET_STD,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        skip_bad_files: bool = False,
        **keys,
    ):
        super().__init__(**keys)
        self.skip_bad_files = skip_bad_files
        self.mean, self.std = list(mean)[: self.in_channels], list(std)[: self.in_channels]
        self.num_workers, self.pin_memory, self.persistent_workers = num_workers, pin_memory, persistent_workers
        self.splits: dict[str, LabeledImages] = {}
        self.loaders: dict[str, DataLoader] = {}

    def read_samples(self) -> FileSplits:
        raise NotImplementedError

    def setup(self, device: torch.device | str = "cpu") -> None:
        found = self.read_samples()
        if len(found.class_names) < 2:
            raise ConfigError(
                "dataset.root",
                self.root,
                f"has {len(found.class_names)} class ({found.class_names}); a classifier "
                "needs images of at least two classes",
            )
        self.set_classes(found.class_names)
        samples = {split: self._readable(split_samples) for split, split_samples in found.samples.items()}
        for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if split not in samples:
                samples["train"], samples[split] = train_test_split(
                    samples["train"],
                    test_size=fraction,
                    stratify=[label for _, label in samples["train"]],
                    random_state=self.split_seed,
                )
        augment = self.augment_options if self.augment_options.get("enabled", False) else None
        train = image_transform(self.in_channels, self.image_size, self.mean, self.std, augment)
        evaluate = image_transform(self.in_channels, self.image_size, self.mean, self.std)
        self.splits = {split: LabeledImages(s, train if split == "train" else evaluate) for split, s in samples.items()}
        self.loaders = {split: self._loader(dataset) for split, dataset in self.splits.items()}

    def _readable(self, samples: list[Sample]) -> list[Sample]:
        """The samples whose file PIL can open (it reads the header only), checked before
        training; an unreadable one is refused with its path, or with
        dataset.skip_bad_files=true left out with a warning."""
        bad = {path for path, _ in samples if not _opens(path)}
        if bad and not self.skip_bad_files:
            raise ConfigError(
                "dataset.root",
                self.root,
                f"{min(bad)} is not a readable image ({len(bad)} such files); remove them "
                "or set dataset.skip_bad_files=true",
            )
        if bad:
            log.warning("dataset.skip_bad_files: left out %d unreadable images, e.g. %s", len(bad), min(bad))
        return [sample for sample in samples if sample[0] not in bad]

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
