"""Batching of in-memory tensors: shuffled, augmented on the tensors' device, resumable.

Small datasets (digits, MNIST, Fashion-MNIST, CIFAR-10) sit as one tensor on the
training device; a batch is one index operation, with no per-sample Python
`__getitem__` and no worker processes. The order of an epoch and every random
augmentation are functions of (seed, epoch, batch), so a run resumed in the middle
of an epoch sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the samples in `epoch`, the same in every process that asks."""
    return torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(n))


def shard_order(order: torch.Tensor, shard: tuple[int, int]) -> torch.Tensor:
    """Process `rank`'s part of an epoch's order among `world` processes: every world-th
    sample from its rank on, the tail that does not divide evenly dropped so all ranks
    take the same number of steps. This is DistributedSampler's split (drop_last=True)
    of the one order every process computes, which keeps `skip` (resuming mid-epoch)
    and the single-process order unchanged."""
    rank, world = shard
    return order[rank : len(order) - len(order) % world : world]


@dataclass(frozen=True)
class BatchAugment:
    """Random affine (rotation, translation, scale) and horizontal flip, drawn per sample.

    Written by hand because torchvision's transforms draw one set of parameters per
    call, i.e. one for the whole batch; here each sample gets its own, in one
    `grid_sample` call on the batch's device.
    """

    rotate_deg: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    hflip: bool = False

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        # The parameters are drawn and assembled in NumPy: for small images, a dozen tiny
        # torch ops would cost more than the sampling itself.
        u = rng.uniform(-1.0, 1.0, size=(len(x), 5))
        angle = np.deg2rad(self.rotate_deg) * u[:, 0]
        zoom = 1 + self.scale * u[:, 1]
        flip = np.where(u[:, 4] < 0, -1.0, 1.0) if self.hflip else 1.0
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        theta = np.empty((len(x), 2, 3), dtype=np.float32)
        theta[:, 0] = np.stack([cos * flip, -sin, 2 * self.translate * u[:, 2]], 1)
        theta[:, 1] = np.stack([sin * flip, cos, 2 * self.translate * u[:, 3]], 1)
        theta = torch.from_numpy(theta).to(device=x.device, dtype=x.dtype)
        grid = (_base_grid(x.shape[2], x.shape[3], x.device, x.dtype) @ theta.transpose(1, 2)).unflatten(1, x.shape[2:])
        # Pad with each image's own minimum, the background of normalized images.
        background = x.amin(dim=(1, 2, 3), keepdim=True)
        return F.grid_sample(x - background, grid, align_corners=False) + background


@functools.cache
def _base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (x, y, 1) pixel-centre coordinates of an image, (height * width, 3): the grid of
    `F.affine_grid` is this times theta transposed. Cached: `affine_grid` rebuilds it on
    every call, which on the CPU costs more than the sampling of a batch of small images."""
    identity = torch.eye(2, 3, device=device, dtype=dtype).unsqueeze(0)
    grid = F.affine_grid(identity, [1, 1, height, width], align_corners=False).view(-1, 2)
    return torch.cat([grid, torch.ones_like(grid[:, :1])], dim=1)


class TensorBatches:
    """Iterable of (x, y) batches over tensors, in the order of one epoch.

    `skip` drops the first batches of the epoch (resuming mid-epoch); `limit` caps the
    number of batches (debug runs).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        order: torch.Tensor | None = None,
        augment: BatchAugment | None = None,
        seed: int = 0,
        epoch: int = 0,
        skip: int = 0,
        limit: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = order.to(x.device) if order is not None else None
        self.augment, self.seed, self.epoch, self.skip, self.shard = augment, seed, epoch, skip, shard
        total = math.ceil((len(x) if order is None else len(order)) / batch_size)
        self.stop = total if limit is None else min(total, limit)

    def __len__(self) -> int:
        return max(self.stop - self.skip, 0)

    def __iter__(self):
        for i in range(self.skip, self.stop):
            index = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if self.order is not None:
                index = self.order[index]
            x, y = self.x[index], self.y[index]
            if self.augment is not None:
                # Keyed by the batch's place in the whole epoch: each rank draws its own.
                rank, world = self.shard
                x = self.augment(x, np.random.default_rng((self.seed, self.epoch, i * world + rank)))
            yield x, y


class TensorSplits:
    """Serves train/val/test tensors held in `splits` (on the training device) as batches;
    the users set `splits`, `batch_size`, `split_seed` and `augment`."""

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    batch_size: int
    split_seed: int
    augment: BatchAugment | None = None

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def train_batches(
        self, epoch: int, skip: int = 0, limit: int | None = None, shard: tuple[int, int] = (0, 1)
    ) -> TensorBatches:
        x, y = self.splits["train"]
        order = shard_order(epoch_permutation(len(y), self.split_seed, epoch), shard)
        return TensorBatches(x, y, self.batch_size, order, self.augment, self.split_seed, epoch, skip, limit, shard)

    def eval_batches(self, split: str, limit: int | None = None) -> TensorBatches:
        x, y = self.splits[split]
        return TensorBatches(x, y, self.batch_size, limit=limit)
