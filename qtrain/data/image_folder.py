"""A folder of images, one sub-folder per class (the retinopathy layout), read by workers.

Either `root/<class>/*` (validation and test split off, stratified and seeded) or
`root/train/<class>/*` with optional `root/val/` and `root/test/` beside it.
"""

from __future__ import annotations

from pathlib import Path

from torchvision import datasets

from qtrain.data.image_files import FileSplits, ImageFilesData, Sample
from qtrain.errors import ConfigError

LAYOUT = "one sub-folder of images per class, or train/ (and optional val/, test/) folders of those"


class ImageFolderData(ImageFilesData):
    def _folder(self, path: Path) -> tuple[list[str], list[Sample]]:
        """torchvision's reading of a class-per-folder tree: class names and samples."""
        try:
            folder = datasets.ImageFolder(str(path))
        except (FileNotFoundError, OSError) as error:
            raise ConfigError("dataset.root", self.root, f"{error}; expected {LAYOUT}") from None
        return folder.classes, [(Path(file), label) for file, label in folder.samples]

    def read_samples(self) -> FileSplits:
        if self.download:
            raise ConfigError("dataset.download", self.download, "an image folder cannot be downloaded; use false")
        root = Path(self.root or "").expanduser()
        if not self.root or not root.is_dir():
            raise ConfigError("dataset.root", self.root, f"no such folder; point it at {LAYOUT}")
        base = root / "train" if (root / "train").is_dir() else root
        classes, samples = self._folder(base)
        found = FileSplits(classes, {"train": samples})
        for split in ("val", "test"):
            folder = root / split
            if base != root and folder.is_dir():
                split_classes, found.samples[split] = self._folder(folder)
                if split_classes != classes:
                    raise ConfigError(
                        "dataset.root", root, f"{folder} has classes {split_classes}, train/ has {classes}"
                    )
        return found
