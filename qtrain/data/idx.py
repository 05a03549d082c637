"""MNIST-style IDX files: find them in a folder, read them (gzipped or not), download them.

torchvision's MNIST classes only read their own `<root>/<Name>/raw/` layout of
uncompressed files; Debian's dataset packages and many mirrors ship a flat folder of
`*-idx?-ubyte.gz`. This reads both, and uses torchvision only to download.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torchvision

from qtrain.data.in_memory import InMemoryImageData, RawSplits
from qtrain.errors import ConfigError

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file as an array: magic (0, 0, dtype, ndim), big-endian dims, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ConfigError("dataset.root", path.parent, f"{path.name} is not an IDX file")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    array = np.frombuffer(bytearray(data), IDX_DTYPES[data[2]], offset=4 + 4 * ndim)  # writable, for torch
    if array.size != int(np.prod(shape)):
        raise ConfigError("dataset.root", path.parent, f"{path.name} is truncated: expected shape {shape}")
    return array.reshape(shape)


def find_idx_files(folders: list[Path]) -> dict[str, Path] | None:
    """The four files from the first folder that holds all of them, `.gz` or not."""
    for folder in folders:
        found = {}
        for key, stem in FILES.items():
            existing = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
            if existing:
                found[key] = existing[0]
        if len(found) == len(FILES):
            return found
    return None


class IdxImageData(InMemoryImageData):
    """MNIST-format dataset. Looks in `root` (flat folder), then in torchvision's
    `<root>/<torchvision_name>/raw`; downloads through torchvision if `download` is set."""

    torchvision_name: str = ""
    classes: tuple[str, ...] = ()

    def load(self) -> RawSplits:
        root = Path(self.root or "data").expanduser()
        folders = [root, root / self.torchvision_name / "raw"]
        files = find_idx_files(folders)
        if files is None and self.download:
            files = self._download(root, folders)
        if files is None:
            raise ConfigError("dataset.root", root, self._not_found(folders, "dataset.download=false"))
        arrays = {key: read_idx(path) for key, path in files.items()}
        train_x, test_x = (arrays[k][:, None].astype(np.float32) / 255.0 for k in ("train_x", "test_x"))
        return RawSplits(train_x, arrays["train_y"], test_x, arrays["test_y"], list(self.classes))

    def _download(self, root: Path, folders: list[Path]) -> dict[str, Path]:
        dataset = getattr(torchvision.datasets, self.torchvision_name)
        try:
            for train in (True, False):
                dataset(str(root), train=train, download=True)
        except (OSError, RuntimeError) as error:  # urllib's URLError is an OSError
            raise ConfigError("dataset.root", root, self._not_found(folders, f"download failed: {error}")) from None
        return find_idx_files(folders)

    def _not_found(self, folders: list[Path], why: str) -> str:
        names = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
        looked = " and ".join(str(f) for f in folders)
        return (
            f"no {self.name} IDX files ({names}) in {looked} ({why}). "
            f"Point dataset.root at a folder holding the four files, .gz or not, "
            f"or run online with dataset.download=true."
        )


class MNISTData(IdxImageData):
    torchvision_name = "MNIST"
    classes = tuple(str(i) for i in range(10))


class FashionMNISTData(IdxImageData):
    torchvision_name = "FashionMNIST"
    classes = tuple(torchvision.datasets.FashionMNIST.classes)
