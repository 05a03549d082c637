"""What a quantum head costs in training: step time of each hybrid model against the
same encoder with a linear head, side by side in one process (medians of --repeats).

    python benchmarks/hybrid_step.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from experiment import build, compose_config
from results_table import write_results
from torch import nn

# (classical, hybrid) model configs, each built as `python -m qtrain model=<name> <overrides>` would.
PAIRS = [
    ("resnet", "resnet_quantum", ["model.quantum.n_qubits=4"]),
    ("resnet", "resnet_quantum", []),
    ("simple_cnn", "cnn_quantum", []),
]


def build_model(model: str, overrides: list[str]) -> tuple[nn.Module, int]:
    """The model of the default digits experiment with `model`, and its image size."""
    cfg = compose_config(f"model={model}", *overrides)
    return build(cfg.model), cfg.dataset.image_size


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def compare(name: str, classical: nn.Module, hybrid: nn.Module, batch: int, size: int, repeats: int) -> dict:
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 10, (batch,))
    for model in (classical, hybrid):
        step_time(model, x, y)  # warm-up
    pairs = [(step_time(classical, x, y), step_time(hybrid, x, y)) for _ in range(repeats)]
    return {
        "pair": name,
        "batch": batch,
        "classical_ms": 1e3 * statistics.median(c for c, _ in pairs),
        "hybrid_ms": 1e3 * statistics.median(h for _, h in pairs),
        "ratio": statistics.median(h / c for c, h in pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for classical_name, hybrid_name, overrides in PAIRS:
        (classical, size), (hybrid, _) = build_model(classical_name, []), build_model(hybrid_name, overrides)
        qubits = hybrid.head.quantum.circuit.num_qubits
        name = f"{classical_name} vs {hybrid_name} ({qubits} qubits, digits {size}x{size})"
        for batch in (32, 64, 128):
            rows.append(compare(name, classical, hybrid, batch, size, args.repeats))
    write_results(
        args.out,
        "hybrid_step",
        rows,
        ["models", "batch", "classical step", "hybrid step", "ratio"],
        lambda r: [
            r["pair"],
            str(r["batch"]),
            f"{r['classical_ms']:.1f} ms",
            f"{r['hybrid_ms']:.1f} ms",
            f"{r['ratio']:.2f}",
        ],
    )


if __name__ == "__main__":
    main()
