"""Data-parallel training: sharding of each epoch, and 2 CPU processes under torchrun (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from qtrain.data.batches import BatchAugment, TensorSplits, epoch_permutation, shard_order


def test_shards_are_disjoint_equal_and_cover_the_epoch_but_its_tail():
    order = epoch_permutation(103, seed=0, epoch=1)
    shards = [shard_order(order, (rank, 4)) for rank in range(4)]
    assert [len(s) for s in shards] == [25] * 4
    union = torch.cat(shards).tolist()
    assert len(set(union)) == 100 and set(union) <= set(order.tolist())
    assert torch.equal(shard_order(order, (0, 1)), order)  # one process: the whole epoch, same order


def splits(n: int) -> TensorSplits:
    data = TensorSplits()
    data.splits = {"train": (torch.randn(n, 1, 8, 8), torch.arange(n))}
    data.batch_size, data.split_seed = 8, 3
    data.augment = BatchAugment(rotate_deg=20, translate=0.1)
    return data


def test_each_rank_draws_its_own_samples_and_augmentations():
    data = splits(64)
    rank0, rank1 = (list(data.train_batches(2, shard=(rank, 2))) for rank in (0, 1))
    assert len(rank0) == len(rank1) == 4
    labels0, labels1 = (set(torch.cat([y for _, y in b]).tolist()) for b in (rank0, rank1))
    assert not labels0 & labels1 and len(labels0 | labels1) == 64
    # Same sample at the same batch position: a different augmentation draw per rank.
    x = data.splits["train"][0][:8]
    draws = [data.augment(x, np.random.default_rng((3, 2, i * 2 + r))) for i, r in ((0, 0), (0, 1))]
    assert not torch.allclose(draws[0], draws[1])
    resumed = list(data.train_batches(2, skip=1, shard=(1, 2)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rank1[1:], resumed, strict=True))


def test_image_folder_shards_each_epoch_and_keeps_one_loader(tmp_path, write_image_folder, image_folder_data):
    write_image_folder(tmp_path, per_class=12)
    data = image_folder_data(tmp_path, val_fraction=0.1, test_fraction=0.1, num_workers=1)
    data.setup("cpu")
    loader = data.train_batches(0, shard=(0, 2))
    rank0 = list(loader.sampler.indices)
    rank1 = list(data.train_batches(0, shard=(1, 2)).sampler.indices)
    assert not set(rank0) & set(rank1) and len(rank0) == len(rank1) == data.size("train") // 2
    assert data.train_batches(1) is loader and loader.persistent_workers  # workers live across epochs
    assert sum(len(y) for _, y in data.train_batches(1, shard=(1, 2))) == data.size("train") // 2


def test_ddp_without_torchrun_is_refused(tmp_path, run_cli):
    result = run_cli("hardware=ddp", "model=simple_cnn", cwd=tmp_path)
    assert result.returncode == 1
    assert "hardware.distributed" in result.stdout and "torchrun --nproc_per_node" in result.stdout
    assert not list(tmp_path.glob("outputs/*/*/checkpoints"))


def test_torchrun_without_ddp_is_refused(tmp_path, run_cli):
    result = run_cli("model=simple_cnn", cwd=tmp_path, env={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert result.returncode == 1
    assert "torchrun started 2 processes; add hardware=ddp" in result.stdout


def test_a_sweep_under_torchrun_is_refused(tmp_path, run_cli):
    torchrun_env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    result = run_cli("-m", "hardware=ddp", "model=simple_cnn", "seed=1,2", cwd=tmp_path, env=torchrun_env)
    assert result.returncode == 1
    assert "a sweep under torchrun is not supported" in result.stdout + result.stderr
    assert not list(tmp_path.glob("multirun/*/*/*/checkpoints"))


def torchrun(*overrides: str, cwd: Path, probe: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*command, str(Path(__file__).with_name("ddp_probe.py")), *overrides],
        check=False,
        cwd=cwd,
        env={**os.environ, "PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def epochs_of(batches: list[list[int]], per_epoch: int) -> list[set[int]]:
    flat = [i for batch in batches for i in batch]
    return [set(flat[start : start + per_epoch]) for start in range(0, len(flat), per_epoch)]


@pytest.mark.slow
def test_two_cpu_processes_train_on_disjoint_data_to_identical_weights(tmp_path, monkeypatch):
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    overrides = ("hardware=ddp", "model=simple_cnn", "stages.train.epochs=2", "trainer.progress=false")
    result = torchrun(*overrides, cwd=tmp_path, probe=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    per_rank = 1221 // 2  # digits' train split, the odd sample left out
    epochs = [epochs_of(rank["seen"], per_rank) for rank in ranks]
    assert [len(e) for e in epochs] == [2, 2]
    for epoch in range(2):
        a, b = epochs[0][epoch], epochs[1][epoch]
        assert len(a) == len(b) == per_rank and not a & b
    assert epochs[0][0] != epochs[0][1]  # a fresh shard each epoch
    for name, tensor in ranks[0]["weights"].items():
        assert torch.equal(tensor, ranks[1]["weights"][name]), name
    run_dirs = list(tmp_path.glob("outputs/*/*"))
    assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoints" / "best.pt").is_file()
    assert (run_dirs[0] / "metrics.json").is_file() and (run_dirs[0] / ".hydra").is_dir()
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["hardware.distributed"] == "True" and "test/acc" in runs[0].data.metrics


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_both_and_the_resumed_run_ends_the_same(tmp_path):
    short = ("hardware=ddp", "model=simple_cnn", "stages.train.epochs=2", "trainer.progress=false", "tracking=none")
    whole = torchrun(*short, "hydra.run.dir=whole", cwd=tmp_path, probe=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = torch.load(tmp_path / "rank0.pt", weights_only=True)["weights"]
    stopped = torchrun(
        *short, "hydra.run.dir=stopped", cwd=tmp_path, probe=tmp_path, env={"PROBE_SIGTERM_RANK1_AFTER": "13"}
    )
    assert stopped.returncode != 0
    assert stopped.stdout.count("stopped by signal 15") == 2  # rank 0 stopped too, though only rank 1 got it
    partial = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert partial["global_step"] == 13 and partial["partial"]["batches"] == 3  # epoch 2, 3 of its 10 steps
    last = tmp_path / "stopped" / "checkpoints" / "last.pt"
    resumed = torchrun(*short, "hydra.run.dir=resumed", f"ckpt_path={last}", cwd=tmp_path, probe=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        weights = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)["weights"]
        assert all(torch.equal(weights[name], expected[name]) for name in expected)
