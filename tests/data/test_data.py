"""Datasets: IDX readers, in-memory batching, augmentation, image folders, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from qtrain.data.batches import BatchAugment, TensorBatches, _base_grid, epoch_permutation
from qtrain.data.digits import DigitsData
from qtrain.data.idx import FashionMNISTData, MNISTData, read_idx
from qtrain.data.image_csv import ImageCsvData
from qtrain.errors import ConfigError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def mnist(root, **kwargs) -> MNISTData:
    options = {
        "name": "mnist",
        "num_classes": 10,
        "in_channels": 1,
        "image_size": 28,
        "batch_size": 16,
        "root": str(root),
    }
    return MNISTData(**{**options, **kwargs})


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_round_trips_what_it_reads(tmp_path, compress, write_mnist_folder):
    arrays = write_mnist_folder(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    labels = read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])


def test_mnist_reads_a_flat_folder_and_splits_it(tmp_path, write_mnist_folder):
    write_mnist_folder(tmp_path, n_train=200, n_test=50)
    data = mnist(tmp_path, val_fraction=0.1, split_seed=3)
    data.setup("cpu")
    assert (data.size("train"), data.size("val"), data.size("test")) == (180, 20, 50)
    x = data.splits["train"][0]
    assert x.shape == (180, 1, 28, 28) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-2  # normalized by train stats
    assert torch.bincount(data.splits["val"][1]).tolist() == [2] * 10  # stratified


def test_mnist_reads_torchvisions_layout_uncompressed(tmp_path, write_mnist_folder):
    write_mnist_folder(tmp_path / "MNIST" / "raw", compress=False)
    data = mnist(tmp_path)
    data.setup("cpu")
    assert data.size("test") == 50


def test_mnist_resizes_and_converts_channels(tmp_path, write_mnist_folder):
    write_mnist_folder(tmp_path)
    data = mnist(tmp_path, image_size=32, in_channels=3)
    data.setup("cpu")
    assert data.splits["test"][0].shape == (50, 3, 32, 32)


def test_mnist_offline_without_files_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError) as error:
        mnist(tmp_path, download=False).setup("cpu")
    message = str(error.value)
    assert message.startswith(f"dataset.root={tmp_path}:")
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte[.gz]" in message
    assert "Point dataset.root at a folder holding the four files" in message


def test_mnist_download_failure_is_reported_with_the_fix(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -3]>")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(ConfigError, match=r"download failed: Error downloading .*dataset\.root at a folder"):
        mnist(tmp_path, download=True).setup("cpu")


def test_mnist_download_goes_through_torchvision(tmp_path, monkeypatch, write_mnist_folder):
    def fake_download(self):  # what torchvision leaves behind: <root>/MNIST/raw/<files>
        write_mnist_folder(Path(self.raw_folder), compress=False)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    data = mnist(tmp_path, download=True)
    data.setup("cpu")
    assert data.size("test") == 50


def test_truncated_idx_file_is_refused(tmp_path, write_mnist_folder):
    write_mnist_folder(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte is truncated"):
        mnist(tmp_path).setup("cpu")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_reads_debians_real_files():
    data = FashionMNISTData(
        name="fashion_mnist", num_classes=10, in_channels=1, image_size=28, batch_size=128, root=str(DEBIAN_FASHION)
    )
    data.setup("cpu")
    assert (data.size("train") + data.size("val"), data.size("test")) == (60_000, 10_000)
    assert torch.bincount(data.splits["test"][1]).tolist() == [1000] * 10
    assert data.class_names[0] == "T-shirt/top"


def test_digits_holds_out_a_stratified_test_split():
    data = DigitsData(name="digits", num_classes=10, in_channels=1, image_size=8, batch_size=32, test_fraction=0.2)
    data.setup("cpu")
    sizes = [data.size(s) for s in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[2] == 360
    assert torch.bincount(data.splits["test"][1]).min() >= 35


def test_num_classes_must_match_the_data():
    data = DigitsData(name="digits", num_classes=7, in_channels=1, image_size=8, batch_size=32)
    with pytest.raises(ConfigError, match="dataset.num_classes=7: the digits data has 10 classes; set 10"):
        data.setup("cpu")


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a, b, c = epoch_permutation(100, 1, 0), epoch_permutation(100, 1, 0), epoch_permutation(100, 1, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(100))


def test_batches_cover_every_sample_once_and_skip_resumes_the_same_order():
    x, y = torch.arange(50.0).view(50, 1, 1, 1), torch.arange(50)
    order = epoch_permutation(50, 0, 2)
    full = list(TensorBatches(x, y, 8, order))
    assert len(full) == 7 and sorted(torch.cat([b[1] for b in full]).tolist()) == list(range(50))
    resumed = list(TensorBatches(x, y, 8, order, skip=3))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(full[3:], resumed, strict=True))
    assert len(TensorBatches(x, y, 8, order, limit=2)) == 2


def test_augmented_batches_are_reproducible_per_batch():
    x, y = torch.randn(32, 1, 12, 12), torch.arange(32)
    augment = BatchAugment(rotate_deg=15, translate=0.1, scale=0.1)
    first = list(TensorBatches(x, y, 8, epoch_permutation(32, 0, 0), augment, seed=0, epoch=0))
    again = list(TensorBatches(x, y, 8, epoch_permutation(32, 0, 0), augment, seed=0, epoch=0, skip=2))
    assert torch.equal(first[2][0], again[0][0])
    assert not torch.allclose(first[0][0], x[epoch_permutation(32, 0, 0)[:8]])


def test_the_cached_sampling_grid_is_affine_grids():
    theta = torch.randn(5, 2, 3)
    grid = _base_grid(7, 9, torch.device("cpu"), torch.float32) @ theta.transpose(1, 2)
    torch.testing.assert_close(grid.unflatten(1, (7, 9)), F.affine_grid(theta, [5, 1, 7, 9], align_corners=False))


def test_augment_with_no_change_is_the_identity_and_samples_differ():
    x = torch.randn(4, 1, 10, 10)
    rng = np.random.default_rng(0)
    torch.testing.assert_close(BatchAugment()(x, rng), x, atol=1e-5, rtol=0)
    same = x[:1].expand(6, -1, -1, -1)
    out = BatchAugment(rotate_deg=30, translate=0.2)(same, rng)
    assert len({tuple(o.flatten().round(decimals=3).tolist()) for o in out}) == 6  # one draw per sample


def test_image_folder_splits_class_folders_and_batches(tmp_path, write_image_folder, image_folder_data):
    write_image_folder(tmp_path)
    data = image_folder_data(tmp_path, val_fraction=0.2, test_fraction=0.2, augment={"enabled": True, "hflip": True})
    data.setup("cpu")
    assert data.class_names == ["a", "b", "c"]
    assert (data.size("train"), data.size("val"), data.size("test")) == (19, 5, 6)  # val: 20% of what test left
    x, y = next(iter(data.train_batches(0)))
    assert x.shape == (4, 3, 16, 16) and y.dtype == torch.long
    assert len(data.train_batches(0, skip=2)) == len(data.train_batches(0)) - 2


def test_image_folder_uses_train_val_test_folders(tmp_path, write_image_folder, image_folder_data):
    for split in ("train", "val", "test"):
        write_image_folder(tmp_path / split, per_class=4)
    data = image_folder_data(tmp_path)
    data.setup("cpu")
    assert (data.size("train"), data.size("val"), data.size("test")) == (12, 12, 12)


def test_image_folder_without_images_is_refused(tmp_path, image_folder_data):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match=rf"dataset.root={tmp_path}: .*expected one sub-folder of images per class"):
        image_folder_data(tmp_path).setup("cpu")


def test_image_folder_missing_is_refused(tmp_path, image_folder_data):
    with pytest.raises(ConfigError, match="dataset.root=.*/nope: no such folder"):
        image_folder_data(tmp_path / "nope").setup("cpu")


def test_hflip_alone_mirrors_about_half_the_images():
    x = torch.randn(64, 1, 6, 6)
    out = BatchAugment(hflip=True)(x, np.random.default_rng(1))
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    unchanged = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    assert all(m != u for m, u in zip(mirrored, unchanged))  # each one or the other
    assert 16 < sum(mirrored) < 48


def test_image_folder_cannot_download(tmp_path, write_image_folder, image_folder_data):
    write_image_folder(tmp_path)
    with pytest.raises(ConfigError, match="dataset.download=True: an image folder cannot be downloaded"):
        image_folder_data(tmp_path, download=True).setup("cpu")


def write_image_csv(root: Path, labels: list[str], splits: list[str] | None = None) -> Path:
    """QSight's layout: images named without their extension in a CSV of image,level."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    lines = ["image,level" + (",split" if splits else "")]
    for i, label in enumerate(labels):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / "images" / f"{i}_left.jpeg")
        lines.append(f"{i}_left,{label}" + (f",{splits[i]}" if splits else ""))
    (root / "trainLabels.csv").write_text("\n".join(lines) + "\n")
    return root / "trainLabels.csv"


def image_csv(root: Path, **kwargs) -> ImageCsvData:
    options = {"name": "image_csv", "num_classes": 3, "in_channels": 3, "image_size": 16, "batch_size": 4}
    options |= {"root": str(root / "images"), "csv": str(root / "trainLabels.csv"), "label_column": "level"}
    return ImageCsvData(**{**options, **kwargs})


def test_image_csv_reads_labels_and_splits_like_a_folder(tmp_path):
    write_image_csv(tmp_path, [str(i % 3 * 5) for i in range(30)])  # levels 0, 5, 10
    data = image_csv(tmp_path, val_fraction=0.2, test_fraction=0.2, augment={"enabled": True, "hflip": True})
    data.setup("cpu")
    assert data.class_names == ["0", "5", "10"]  # numbers sort by value
    assert (data.size("train"), data.size("val"), data.size("test")) == (19, 5, 6)  # as image_folder splits 30
    x, y = next(iter(data.train_batches(0)))
    assert x.shape == (4, 3, 16, 16) and set(y.tolist()) <= {0, 1, 2}
    labels = {path.name: label for path, label in data.splits["test"].samples}
    assert all(int(name.split("_")[0]) % 3 == label for name, label in labels.items())  # row i has level (i % 3) * 5


def test_image_csv_split_column_fixes_the_splits(tmp_path):
    splits = ["train"] * 12 + ["val"] * 3 + ["test"] * 3
    write_image_csv(tmp_path, [str(i % 3) for i in range(18)], splits)
    data = image_csv(tmp_path, split_column="split")
    data.setup("cpu")
    assert (data.size("train"), data.size("val"), data.size("test")) == (12, 3, 3)
    assert sorted(path.name for path, _ in data.splits["val"].samples) == [
        "12_left.jpeg",
        "13_left.jpeg",
        "14_left.jpeg",
    ]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"label_column": "grade"}, "dataset.label_column=grade: .* has no such column; it has image, level"),
        ({"csv": "/no/such.csv"}, "dataset.csv=/no/such.csv: no such file"),
        ({"num_classes": 4}, "dataset.num_classes=4: the image_csv data has 3 classes"),
    ],
)
def test_image_csv_mistakes_name_the_key(tmp_path, change, message):
    write_image_csv(tmp_path, [str(i % 3) for i in range(12)])
    with pytest.raises(ConfigError, match=message):
        image_csv(tmp_path, **change).setup("cpu")


def test_image_csv_names_a_missing_image(tmp_path):
    write_image_csv(tmp_path, [str(i % 3) for i in range(12)])
    (tmp_path / "images" / "4_left.jpeg").unlink()
    with pytest.raises(ConfigError, match="1 of the CSV's 12 images are not in it, e.g. 4_left"):
        image_csv(tmp_path).setup("cpu")


def test_image_folder_with_one_class_is_refused(tmp_path, write_image_folder, image_folder_data):
    write_image_folder(tmp_path, classes=("only",))
    with pytest.raises(ConfigError, match=r"has 1 class \(\['only'\]\); a classifier needs images of at least two"):
        image_folder_data(tmp_path, num_classes=1).setup("cpu")


def test_an_unreadable_image_is_named_or_skipped_with_a_warning(
    tmp_path, caplog, write_image_folder, image_folder_data
):
    write_image_folder(tmp_path)
    bad = tmp_path / "b" / "3.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(ConfigError, match=rf"{bad} is not a readable image \(1 such files\); .*skip_bad_files=true"):
        image_folder_data(tmp_path).setup("cpu")
    data = image_folder_data(tmp_path, skip_bad_files=True)
    data.setup("cpu")
    assert sum(data.size(split) for split in ("train", "val", "test")) == 29
    assert f"left out 1 unreadable images, e.g. {bad}" in caplog.text
