"""Training throughput (samples/s) of each model family as the configs build it, on
digits batches through qtrain's own loop; on a GPU also with AMP and torch.compile.
Medians of --repeats epochs of --batches batches each.

    python benchmarks/training_throughput.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from experiment import build, compose_config
from results_table import write_results

from qtrain.config import describe
from qtrain.engine.hardware import autocast_factory, grad_scaler, resolve_amp, resolve_device
from qtrain.engine.interrupt import StopRequest
from qtrain.engine.loop import EpochProgress, StepOptions, train_epoch
from qtrain.engine.schedulers import constant
from qtrain.engine.stages import StageLoss, apply_stage, plan_stages
from qtrain.tasks import Classification

MODELS = ["simple_cnn", "resnet", "resnet_quantum", "hybrid_ensemble"]
TASK = Classification()


def setup(model_name: str, device: torch.device):
    """The model, its single-stage loss and the digits data of `python -m qtrain model=<name>`."""
    cfg = compose_config(f"model={model_name}")
    model, data = build(cfg.model).to(device), build(cfg.dataset)
    data.setup(device)
    (stage,) = plan_stages(describe(cfg).stages, model)
    apply_stage(model, stage)
    return model, data, StageLoss(stage.loss_weights, TASK.loss)


def throughput(model, data, criterion, device, amp: str | None, batches: int, repeats: int) -> float:
    options = StepOptions(
        criterion=criterion,
        task=TASK,
        device=device,
        autocast=autocast_factory(device, amp),
        scaler=grad_scaler(device, amp),
        grad_clip_norm=1.0,
    )
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rates = []
    for epoch in range(repeats + 1):  # the first epoch warms up
        progress = EpochProgress()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with StopRequest() as stop:
            batches_of_epoch = data.train_batches(epoch, limit=batches)
            train_epoch(model, batches_of_epoch, optimizer, constant(optimizer, 1, 1), options, progress, stop)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(progress.samples / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    device = resolve_device("auto")
    # On a GPU: full precision, AMP, and AMP + torch.compile; on the CPU full precision only.
    variants = [("fp32", None, False)]
    if device.type == "cuda":
        variants += [("amp", resolve_amp(device, "auto"), False), ("amp+compile", resolve_amp(device, "auto"), True)]
    rows = []
    for name in MODELS:
        model, data, criterion = setup(name, device)
        for label, amp, compiled in variants:
            forward = torch.compile(model) if compiled else model
            rate = throughput(forward, data, criterion, device, amp, args.batches, args.repeats)
            rows.append(
                {
                    "model": name,
                    "device": device.type,
                    "variant": label,
                    "batch": data.batch_size,
                    "samples_per_s": rate,
                }
            )
    write_results(
        args.out,
        "training_throughput",
        rows,
        ["model", "device", "variant", "batch", "samples/s"],
        lambda r: [r["model"], r["device"], r["variant"], str(r["batch"]), f"{r['samples_per_s']:,.0f}"],
    )


if __name__ == "__main__":
    main()
