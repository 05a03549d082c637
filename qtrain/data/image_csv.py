"""Images in a folder, labels in a CSV file (QSight's `trainLabels.csv` layout: `image,level`
rows naming `<root>/<image>.jpeg`), read by workers like an image folder.

The image column names a file relative to `root`, with or without its extension; the
label column holds the class (any text; classes are its distinct values, sorted, numbers
by value). An optional split column (`train`, `val`, `test`) fixes the splits; splits it
does not name are taken from the train rows, stratified and seeded.
"""

from __future__ import annotations

import csv
from pathlib import Path

from qtrain.data.image_files import FileSplits, ImageFilesData
from qtrain.errors import ConfigError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")


def sorted_classes(labels: set[str]) -> list[str]:
    """Class names in label order: by value when every label is a number (0, 1, ..., 10)."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


class ImageCsvData(ImageFilesData):
    def __init__(
        self,
        csv: str | None = None,
        image_column: str = "image",
        label_column: str = "label",
        split_column: str | None = None,
        **keys,
    ):
        super().__init__(**keys)
        self.csv = csv
        self.image_column, self.label_column, self.split_column = image_column, label_column, split_column

    def _rows(self) -> list[dict[str, str]]:
        path = Path(self.csv or "").expanduser()
        if not self.csv or not path.is_file():
            raise ConfigError("dataset.csv", self.csv, "no such file; give the CSV of image names and labels")
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            for key in ("image_column", "label_column", "split_column"):
                column = getattr(self, key)
                if column is not None and column not in columns:
                    raise ConfigError(
                        f"dataset.{key}", column, f"{path} has no such column; it has {', '.join(columns)}"
                    )
            return list(reader)

    def _files(self, root: Path) -> dict[str, Path]:
        """Every image under `root` by its name relative to root, with and without suffix
        (one listing of the folder instead of a lookup per row)."""
        files = {}
        for path in root.rglob("*"):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                name = path.relative_to(root).as_posix()
                files[name] = path
                files.setdefault(name[: -len(path.suffix)], path)
        return files

    def read_samples(self) -> FileSplits:
        if self.download:
            raise ConfigError("dataset.download", self.download, "an image CSV cannot be downloaded; use false")
        root = Path(self.root or "").expanduser()
        if not self.root or not root.is_dir():
            raise ConfigError("dataset.root", self.root, "no such folder; point it at the folder of the CSV's images")
        rows, files = self._rows(), self._files(root)
        missing = [row[self.image_column] for row in rows if row[self.image_column] not in files]
        if missing:
            raise ConfigError(
                "dataset.root",
                self.root,
                f"{len(missing)} of the CSV's {len(rows)} images are not in it, e.g. {missing[0]}",
            )
        classes = sorted_classes({row[self.label_column] for row in rows})
        index = {name: i for i, name in enumerate(classes)}
        found = FileSplits(classes)
        for row in rows:
            split = row[self.split_column].strip().lower() if self.split_column else "train"
            if split not in SPLITS:
                raise ConfigError(
                    "dataset.split_column", self.split_column, f"has the value {split!r}; use train, val or test"
                )
            found.samples.setdefault(split, []).append((files[row[self.image_column]], index[row[self.label_column]]))
        if "train" not in found.samples:
            raise ConfigError("dataset.csv", self.csv, "has no train rows")
        return found
