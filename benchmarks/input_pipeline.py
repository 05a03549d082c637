"""Is the input pipeline the bottleneck? Training throughput over pure compute.

For each case, side by side in one process: (a) `train_epoch` over the dataset's own
batches (indexing, per-sample augmentation, metrics), and (b) the same number of
forward+backward+step calls on one ready-made batch. efficiency = (a) / (b) in
samples/s; 1.0 means the pipeline costs nothing. Medians over --repeats.

    python benchmarks/input_pipeline.py --repeats 5 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from results_table import write_results

from qtrain.data.batches import BatchAugment, TensorBatches, epoch_permutation
from qtrain.data.digits import DigitsData
from qtrain.engine.hardware import autocast_factory, grad_scaler
from qtrain.engine.interrupt import StopRequest
from qtrain.engine.loop import EpochProgress, StepOptions, optimizer_step, train_epoch
from qtrain.engine.schedulers import constant
from qtrain.engine.stages import StageLoss
from qtrain.models.simple_cnn import SimpleCNN
from qtrain.tasks import Classification

TASK = Classification()


def pipeline_rate(model, make_batches, options, epoch) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    progress = EpochProgress()
    start = time.perf_counter()
    with StopRequest() as stop:
        train_epoch(model, make_batches(epoch), optimizer, constant(optimizer, 1, 1), options, progress, stop)
    return progress.samples / (time.perf_counter() - start)


def compute_rate(model, batches, options) -> float:
    """The same optimizer steps (clipping included) on one batch that is already there:
    no indexing, no augmentation, no running metrics."""
    x, y = next(iter(batches))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = constant(optimizer, 1, 1)
    model.train()
    start = time.perf_counter()
    samples = 0
    for _ in range(len(batches)):
        options.criterion(model(x), y)[0].backward()
        optimizer_step(model, optimizer, scheduler, options)
        samples += len(y)
    return samples / (time.perf_counter() - start)


def measure(name, model, make_batches, repeats) -> dict:
    device = torch.device("cpu")
    options = StepOptions(
        criterion=StageLoss({}, TASK.loss),
        task=TASK,
        device=device,
        autocast=autocast_factory(device, None),
        scaler=grad_scaler(device, None),
        grad_clip_norm=1.0,
    )
    pipeline_rate(model, make_batches, options, 0)  # warm-up
    pipeline, compute = [], []
    for r in range(repeats):
        pipeline.append(pipeline_rate(model, make_batches, options, r + 1))
        compute.append(compute_rate(model, make_batches(r + 1), options))
    ratios = [p / c for p, c in zip(pipeline, compute)]
    return {
        "case": name,
        "train_samples_per_s": statistics.median(pipeline),
        "compute_samples_per_s": statistics.median(compute),
        "efficiency": statistics.median(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    digits = DigitsData(
        name="digits",
        num_classes=10,
        in_channels=1,
        image_size=16,
        batch_size=64,
        augment={"enabled": True, "rotate_deg": 8, "translate": 0.08, "scale": 0.08},
    )
    digits.setup("cpu")
    # MNIST's size and shape, in memory as `dataset=mnist` holds it, with its augmentation.
    x, y = torch.randn(12_800, 1, 28, 28), torch.randint(0, 10, (12_800,))
    augment = BatchAugment(rotate_deg=10, translate=0.1, scale=0.1)

    def mnist_sized(epoch: int) -> TensorBatches:
        return TensorBatches(x, y, 128, epoch_permutation(len(y), 0, epoch), augment, seed=0, epoch=epoch)

    results = [
        measure("simple_cnn, digits 16x16, batch 64", SimpleCNN(10, 1, 16), digits.train_batches, args.repeats),
        measure("simple_cnn, MNIST-sized 28x28, batch 128", SimpleCNN(10, 1, 28), mnist_sized, args.repeats),
    ]
    write_results(
        args.out,
        "input_pipeline",
        results,
        ["case", "training samples/s", "compute-only samples/s", "efficiency"],
        lambda r: [
            r["case"],
            f"{r['train_samples_per_s']:,.0f}",
            f"{r['compute_samples_per_s']:,.0f}",
            f"{r['efficiency']:.2f}",
        ],
    )


if __name__ == "__main__":
    main()
