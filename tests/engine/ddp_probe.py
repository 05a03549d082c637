"""`python -m qtrain` as torchrun starts it, with each rank recording what it trained on.

tests/engine/test_distributed.py runs `torchrun --nproc_per_node=2 tests/engine/ddp_probe.py <overrides>`:
every rank runs qtrain's real entry point, and writes `$PROBE_DIR/rank<N>.pt` holding
the sample indices of every training batch it drew and its weights after training.
With `PROBE_SIGTERM_RANK1_AFTER=N`, rank 1 alone gets a real SIGTERM after N steps.
"""

import os
import signal
import sys
from pathlib import Path

import torch

from qtrain.__main__ import cli
from qtrain.data.batches import TensorBatches
from qtrain.engine import loop
from qtrain.engine.fit import Trainer

seen: list[list[int]] = []
draw_batches, fit = TensorBatches.__iter__, Trainer.fit


def recording_draw(self):
    for i, (x, y) in enumerate(draw_batches(self)):
        if self.order is not None:  # training batches (evaluation has no order)
            start = (self.skip + i) * self.batch_size
            seen.append(self.order[start : start + len(y)].tolist())
        yield x, y


def fit_and_record(self):
    fit(self)
    state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
    torch.save({"seen": seen, "weights": state}, Path(os.environ["PROBE_DIR"]) / f"rank{os.environ['RANK']}.pt")


TensorBatches.__iter__, Trainer.fit = recording_draw, fit_and_record
signal_after = int(os.environ.get("PROBE_SIGTERM_RANK1_AFTER", "0"))
if signal_after and os.environ["RANK"] == "1":
    step, steps = loop.optimizer_step, []

    def step_then_signal(*args, **kwargs):
        step(*args, **kwargs)
        steps.append(1)
        if len(steps) == signal_after:
            os.kill(os.getpid(), signal.SIGTERM)

    loop.optimizer_step = step_then_signal
sys.argv[0] = "qtrain"
cli()
