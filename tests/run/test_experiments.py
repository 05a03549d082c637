"""Every experiment preset composes and runs under debug=fast (lightning-hydra-template's
test_experiments), on data the test writes; the presets say what they replace."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qtrain

CONF = Path(qtrain.CONFIG_DIR)  # the config groups

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# In make test-slow: torch.compile on the CPU (~2 minutes); three stages of a ViT (~16 s).
SLOW = {"image_folder_resnet18_optimized", "retinopathy_staged_ensemble"}


def write_image_csv(root, classes=5, per_class=14, size=24):
    """QSight's layout: <root>/images/<name>.jpeg and trainLabels.csv of image,level."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    with open(root / "trainLabels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "level"])
        for level in range(classes):
            for j in range(per_class):
                name = f"{level}_{j}_left"
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                    root / "images" / f"{name}.jpeg"
                )
                writer.writerow([name, level])


def write_image_folder(root, classes=3, per_class=15, size=24):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{j}.png")


def data_for(experiment: str, tmp_path, write_mnist_folder, write_image_folder) -> list[str]:
    """Overrides pointing the preset at small files of its dataset's layout."""
    if experiment.startswith("digits"):
        return []  # scikit-learn ships it
    if experiment.startswith(("mnist", "fashion_mnist")):
        write_mnist_folder(tmp_path / "idx", n_train=120, n_test=40)
        return [f"dataset.root={tmp_path / 'idx'}", "dataset.download=false"]
    if experiment.startswith("retinopathy"):
        write_image_csv(tmp_path)
        return [f"dataset.root={tmp_path / 'images'}", f"dataset.csv={tmp_path / 'trainLabels.csv'}"]
    if experiment.startswith("image_folder"):
        write_image_folder(tmp_path / "folder")
        return [f"dataset.root={tmp_path / 'folder'}", "dataset.num_classes=3"]
    if experiment.startswith("signal"):
        return [f"dataset.root={tmp_path / 'signal'}", "dataset.num_samples=200"]
    raise AssertionError(f"no test data for experiment={experiment}")


@pytest.mark.parametrize(
    "experiment", [pytest.param(e, marks=pytest.mark.slow) if e in SLOW else e for e in EXPERIMENTS]
)
def test_every_experiment_runs_under_debug_fast(
    experiment, tmp_path, run_config, write_mnist_folder, write_image_folder
):
    header = (CONF / "experiment" / f"{experiment}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    says_what = ("# Replaces", "# Fashion-MNIST", "# The classical twin", "# Noise-aware")
    assert any(line.startswith(says_what) for line in header[:3])
    metrics = run_config(
        tmp_path / "run",
        f"experiment={experiment}",
        "debug=fast",
        *data_for(experiment, tmp_path, write_mnist_folder, write_image_folder),
    )
    assert np.isfinite(metrics["test/loss"])
    assert (tmp_path / "run" / "model_info.json").is_file()


def test_an_unknown_experiment_lists_the_presets(tmp_path, run_cli):
    result = run_cli("experiment=nope", cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not find 'experiment/nope'" in result.stderr
    assert all(name in result.stderr for name in EXPERIMENTS)
