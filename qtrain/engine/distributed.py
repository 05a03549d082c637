"""Data-parallel training over the processes torchrun starts (DistributedDataParallel).

`torchrun --nproc_per_node=N -m qtrain hardware=ddp` starts N copies of qtrain; torchrun
puts RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous address in their environment. Each
copy joins the process group here, trains on its shard of every epoch (the batch size
is per process), and keeps its weights in step through DDP's gradient all-reduce.
Rank 0 alone writes the run directory, the checkpoints and the MLflow run; the other
ranks use rank 0's run directory for reading.

`ProcessGroup` is also what a single process runs with: rank 0 of 1, where every
collective is a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qtrain.engine.hardware import resolve_device
from qtrain.errors import ConfigError

LAUNCH = "torchrun --nproc_per_node=N -m qtrain hardware=ddp ..."


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes, and the collectives it uses."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size): which part of each epoch's samples this process trains on."""
        return self.rank, self.world_size

    def wrap(self, module: nn.Module, find_unused_parameters: bool) -> nn.Module:
        """`module` under DDP (which broadcasts rank 0's weights and buffers now and
        all-reduces the gradients of every backward pass); itself in one process.
        Wrap after freezing: DDP hooks only the parameters that require gradients."""
        if self.backend is None:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)

    def sum(self, values: list[float]) -> list[float]:
        return self._all_reduce(values, dist.ReduceOp.SUM)

    def max(self, values: list[float]) -> list[float]:
        return self._all_reduce(values, dist.ReduceOp.MAX)

    def _all_reduce(self, values: list[float], op) -> list[float]:
        if self.backend is None:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def broadcast(self, value):
        """Rank 0's `value` (any picklable object) on every rank."""
        if self.backend is None:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._collective_device)
        return box[0]

    def broadcast_module(self, module: nn.Module) -> None:
        """Overwrite every rank's weights and buffers with rank 0's, in place."""
        if self.backend is None:
            return
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        if self.backend is not None:
            dist.barrier()

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def _torchrun_env() -> tuple[int, int, int] | None:
    if "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def process_group(hardware: DictConfig) -> Iterator[ProcessGroup]:
    """Join torchrun's process group for `hardware.distributed`, leave it at the end;
    refuse a distributed setting without torchrun, and torchrun without it."""
    launched = _torchrun_env()
    if not hardware.distributed:
        if launched is not None and launched[1] > 1:
            raise ConfigError(
                "hardware.distributed", False, f"torchrun started {launched[1]} processes; add hardware=ddp"
            )
        yield ProcessGroup(resolve_device(hardware.device))
        return
    if launched is None:
        raise ConfigError("hardware.distributed", True, f"needs the processes torchrun starts: {LAUNCH}")
    rank, world_size, local_rank = launched
    device = resolve_device(hardware.device, local_rank)
    backend = hardware.backend if hardware.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    try:
        yield ProcessGroup(device, rank, world_size, backend)
    finally:
        dist.destroy_process_group()
