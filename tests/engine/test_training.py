"""Training end to end: the run directory, resume, evaluation, checkpoints, schedules."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import torch

from qtrain.engine import run_checkpoints
from qtrain.engine.checkpoint import load_checkpoint, save_checkpoint
from qtrain.engine.hardware import configure_backends, memory_format, resolve_amp
from qtrain.errors import ConfigError, TrainingInterrupted
from qtrain.files import remove_dead_temporaries
from qtrain.models.simple_cnn import SimpleCNN
from qtrain.tracking.tracker import Trackers

# Deterministic CPU runs of a few batches per epoch on digits.
SHORT = [
    "model=simple_cnn",
    "hardware=cpu",
    "trainer.progress=false",
    "trainer.limit_train_batches=6",
    "stages.train.epochs=3",
    "optimizer.lr=5e-3",
]


def test_a_short_run_writes_the_whole_run_directory(tmp_path, run_config, read_history):
    metrics = run_config(tmp_path, *SHORT)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc_best", "test/f1_macro"):
        assert saved[key] == pytest.approx(metrics[key])
    assert saved["val/acc_best"] > 0.3  # 18 steps of Adam on digits learn something
    assert saved["stages"][0]["name"] == "train" and saved["stages"][0]["epochs"] == 3
    assert saved["stages"][0]["wall_time_s"] > 0
    history = read_history(tmp_path)
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    assert {"stage", "lr", "train/loss", "train/acc", "val/loss", "val/acc"} <= set(history[0])
    assert float(history[0]["lr"]) > float(history[-1]["lr"])  # warmup_cosine decays to the end
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(tmp_path / "checkpoints" / name)
        assert {"model", "optimizer", "scheduler", "state", "rng", "config"} <= set(state)
        assert state["config"]["dataset"]["name"] == "digits"
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["state"]["stage_index"] == 1
    for plot in ("confusion_matrix.png", "learning_curves.png"):
        assert (tmp_path / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.txt").read_text()
    assert "precision" in report and "recall" in report and "f1-score" in report
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("steps", [6, 9])  # at an epoch boundary; in the middle of epoch 2
def test_resume_after_sigterm_ends_with_the_same_weights(
    tmp_path, monkeypatch, steps, run_config, interrupt_after, final_weights, read_history
):
    overrides = [*SHORT, "trainer.accumulate_batches=1"]
    run_config(tmp_path / "straight", *overrides)
    interrupt_after(steps)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_config(tmp_path / "cut", *overrides)
    monkeypatch.undo()
    assert stopped.value.signum == signal.SIGTERM
    last = load_checkpoint(stopped.value.checkpoint)
    assert last["state"]["global_step"] == steps
    resumed = run_config(tmp_path / "resumed", *overrides, f"ckpt_path={stopped.value.checkpoint}")
    straight, again = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(straight[k], again[k]) for k in straight)
    assert resumed["test/acc"] == json.loads((tmp_path / "straight" / "metrics.json").read_text())["test/acc"]
    assert len(read_history(tmp_path / "resumed")) == 3


def test_evaluate_only_reproduces_the_stored_test_metric(tmp_path, run_config):
    trained = run_config(tmp_path / "train", *SHORT)
    best = tmp_path / "train" / "checkpoints" / "best.pt"
    evaluated = run_config(tmp_path / "eval", "model=simple_cnn", "hardware=cpu", "train=false", f"ckpt_path={best}")
    assert evaluated["test/acc"] == trained["test/acc"]
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-6)
    assert not (tmp_path / "eval" / "checkpoints").exists()  # evaluation writes no checkpoints


def test_accumulation_takes_one_step_per_n_batches(tmp_path, run_config, read_history):
    run_config(tmp_path, *SHORT, "trainer.accumulate_batches=3")
    assert [int(r["step"]) for r in read_history(tmp_path)] == [2, 4, 6]


def test_early_stopping_ends_the_stage(tmp_path, run_config, read_history):
    # With a vanishing lr, val/acc cannot improve after epoch 1: patience 2 stops after epoch 3.
    run_config(tmp_path, *SHORT, "stages.train.epochs=10", "stages.train.patience=2", "optimizer.lr=1e-12")
    assert len(read_history(tmp_path)) == 3
    assert json.loads((tmp_path / "metrics.json").read_text())["stages"][0]["epochs"] == 3


def test_keep_epoch_checkpoints_keeps_the_newest(tmp_path, run_config):
    run_config(tmp_path, *SHORT, "stages.train.epochs=4", "trainer.keep_epoch_checkpoints=2")
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*.pt")) == ["epoch_0003.pt", "epoch_0004.pt"]


def test_mnist_idx_files_train_end_to_end(tmp_path, write_mnist_folder, run_config):
    write_mnist_folder(tmp_path / "mnist", n_train=400, n_test=100)
    metrics = run_config(
        tmp_path / "run",
        "model=simple_cnn",
        "dataset=mnist",
        f"dataset.root={tmp_path / 'mnist'}",
        "dataset.download=false",
        "hardware=cpu",
        "trainer.progress=false",
        "stages.train.epochs=3",
        "dataset.augment.enabled=false",
    )
    assert metrics["test/acc"] > 0.8  # the label is drawn into each image


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, path)

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(2)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_the_half_written_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    # A writer stopped inside its write (its fsync never returns), then SIGKILLed.
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_STOPPED_IN_ITS_WRITE, str(tmp_path / "last.pt")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "writing\n"
    half = tmp_path / f".last.pt.{writer.pid}.tmp"
    reused = tmp_path / f".best.pt.{os.getpid()}.tmp"  # a dead writer's, whose process id is now this one's
    reused.write_bytes(b"x")
    assert remove_dead_temporaries(tmp_path) == [reused]
    assert half.is_file()  # its writer is alive
    writer.kill()
    writer.wait()
    assert remove_dead_temporaries(tmp_path) == [half]
    assert list(tmp_path.iterdir()) == []


WRITER_STOPPED_IN_ITS_WRITE = """
import os, sys, time
from pathlib import Path
from qtrain.files import save_tagged
os.fsync = lambda fd: (print("writing", flush=True), time.sleep(600))
save_tagged(Path(sys.argv[1]), "test", {})
"""


def test_schedules_follow_their_shape(tmp_path):
    from qtrain.engine import schedulers

    def lrs(make, steps=20):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make(optimizer, total_steps=steps, steps_per_epoch=5)
        values = []
        for _ in range(steps):
            values.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return values

    warm = lrs(lambda o, **k: schedulers.warmup_cosine(o, **k, warmup_epochs=1, warmup_start_factor=0.1, eta_min=0.0))
    assert warm[0] == pytest.approx(0.1) and max(warm) == pytest.approx(warm[5]) and warm[-1] < 0.05
    cycle = lrs(lambda o, **k: schedulers.onecycle(o, **k, pct_start=0.3, div_factor=25, final_div_factor=1e4))
    assert cycle[0] == pytest.approx(1 / 25) and max(cycle) == pytest.approx(1.0, rel=0.02) and cycle[-1] < 1e-3
    stepped = lrs(lambda o, **k: schedulers.step(o, **k, step_epochs=2, gamma=0.1))
    assert stepped[9] == 1.0 and stepped[10] == pytest.approx(0.1)
    assert set(lrs(schedulers.constant)) == {1.0}


def test_a_resumed_run_carries_the_best_checkpoint_on(tmp_path, monkeypatch, interrupt_after, run_config):
    # A vanishing lr: val/acc peaks in epoch 1, so the resumed epochs never write a best.pt of their own.
    overrides = [*SHORT, "optimizer.lr=1e-12", "scheduler=none"]
    interrupt_after(9)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_config(tmp_path / "cut", *overrides)
    monkeypatch.undo()
    run_config(tmp_path / "resumed", *overrides, f"ckpt_path={stopped.value.checkpoint}")
    before = load_checkpoint(tmp_path / "cut" / "checkpoints" / "best.pt")
    after = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "best.pt")
    assert before["state"]["history"] == after["state"]["history"]  # the same file: epoch 1's best
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


def test_compiled_model_trains_and_checkpoints_plain_weights(tmp_path, monkeypatch, run_config):
    # Inductor needs a minute on this CPU; the eager backend yields the same wrapper in seconds.
    compile_eager = functools.partial(torch.compile, backend="eager")
    monkeypatch.setattr("qtrain.engine.hardware.torch.compile", compile_eager)
    run_config(tmp_path, "debug=fast", "hardware=cpu", "hardware.compile=true")
    weights = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"]
    assert weights and not any(key.startswith("_orig_mod.") for key in weights)


def test_profile_writes_a_trace_of_the_asked_steps(tmp_path, run_config, read_history):
    run_config(tmp_path, *SHORT, "hardware.profile=true", "hardware.profile_steps=2", "stages.train.epochs=1")
    trace = json.loads((tmp_path / "profile" / "trace.json").read_text())
    assert any(event.get("name", "").startswith("aten::") for event in trace["traceEvents"])
    assert "Self CPU" in (tmp_path / "profile" / "ops.txt").read_text()
    assert read_history(tmp_path)[0]["step"] == "6"  # profiling does not change the run


@pytest.mark.parametrize(
    ("device", "bf16", "expected"), [("cpu", True, None), ("cuda", True, "bf16"), ("cuda", False, "fp16")]
)
def test_amp_auto_picks_bf16_where_the_gpu_has_it(monkeypatch, device, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert resolve_amp(torch.device(device), "auto") == expected
    assert resolve_amp(torch.device(device), "fp16") == "fp16"


def test_channels_last_trains_nhwc_weights_to_the_same_result(tmp_path, run_config):
    short = ("debug=fast", "hardware=cpu", "model=simple_cnn")
    plain = run_config(tmp_path / "plain", *short)
    nhwc = run_config(tmp_path / "nhwc", *short, "hardware.channels_last=true")
    # Other convolution kernels round differently; Adam turns that into small drifts.
    assert nhwc["test/loss"] == pytest.approx(plain["test/loss"], rel=1e-2)
    model = SimpleCNN(10, 1, 16).eval()
    x = torch.randn(8, 1, 16, 16)
    expected = model(x)
    memory_format(model, channels_last=True)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_setting_reaches_matmuls_and_convolutions(tf32):
    configure_backends(deterministic=False, cudnn_benchmark=False, tf32=tf32)
    assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32


def test_a_signal_while_the_last_checkpoint_is_written_is_not_lost_and_resumes_exactly(
    tmp_path, monkeypatch, run_config, read_history
):
    straight = run_config(tmp_path / "straight", *SHORT)
    last_epoch = len(read_history(tmp_path / "straight"))

    def signal_at_the_last_epoch_end(self, row):  # runs just before last.pt is written
        if row["epoch"] == last_epoch:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trackers, "log_epoch", signal_at_the_last_epoch_end)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_config(tmp_path / "cut", *SHORT)
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "metrics.json").exists()  # not tested: it stopped
    resumed = run_config(tmp_path / "resumed", *SHORT, f"ckpt_path={stopped.value.checkpoint}")
    assert resumed["test/acc"] == straight["test/acc"]


def test_a_signal_during_the_final_test_ends_the_run_as_interrupted(tmp_path, monkeypatch, run_config):
    from qtrain import run

    original = run.report_test_split

    def signal_then_test(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args)

    monkeypatch.setattr(run, "report_test_split", signal_then_test)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_config(tmp_path, *SHORT)
    assert stopped.value.signum == signal.SIGTERM
    assert stopped.value.checkpoint == tmp_path / "checkpoints" / "last.pt"


def test_a_finished_run_resumed_with_more_epochs_goes_on_with_the_schedule_planned_anew(
    tmp_path, caplog, run_config, read_history
):
    caplog.set_level(logging.INFO, logger="qtrain")
    run_config(tmp_path / "two", *SHORT, "stages.train.epochs=2")
    run_config(tmp_path / "four", *SHORT, "stages.train.epochs=4")
    last = tmp_path / "two" / "checkpoints" / "last.pt"
    run_config(tmp_path / "more", *SHORT, "stages.train.epochs=4", f"ckpt_path={last}")
    history, straight = read_history(tmp_path / "more"), read_history(tmp_path / "four")
    assert [int(row["epoch"]) for row in history] == [1, 2, 3, 4]
    # Epochs 3 and 4 follow the 4-epoch schedule, as if it had been planned from the start.
    assert [float(row["lr"]) for row in history[2:]] == pytest.approx([float(row["lr"]) for row in straight[2:]])
    assert [row["step"] for row in history[2:]] == [row["step"] for row in straight[2:]]
    assert "stage train: 4 epochs instead of 2: the learning-rate schedule is planned anew" in caplog.text
    with pytest.raises(ConfigError, match="the checkpoint's run used other settings"):
        run_config(tmp_path / "other", *SHORT, "stages.train.epochs=4", "optimizer.lr=1e-2", f"ckpt_path={last}")


def test_init_from_starts_a_new_run_from_a_checkpoints_weights(tmp_path, run_config, read_history):
    trained = run_config(tmp_path / "trained", *SHORT)
    best = tmp_path / "trained" / "checkpoints" / "best.pt"
    # Other settings, a fresh optimizer; with a vanishing lr the weights stay the checkpoint's.
    tuned = run_config(tmp_path / "tuned", *SHORT, f"init_from={best}", "stages.train.epochs=1", "optimizer.lr=1e-12")
    assert tuned["test/acc"] == trained["test/acc"]
    assert len(read_history(tmp_path / "tuned")) == 1  # a new run: its own history
    with pytest.raises(ConfigError, match=f"init_from={best}: its weights do not fit this model"):
        run_config(tmp_path / "other", *SHORT, "model=cnn_quantum", f"init_from={best}")
    with pytest.raises(ConfigError, match="init_from=.*ckpt_path resumes one: give one"):
        run_config(tmp_path / "both", *SHORT, f"init_from={best}", f"ckpt_path={best}")


class Killed(BaseException):
    """A kill between two checkpoint writes (nothing in qtrain handles it)."""


# Every epoch of SHORT improves, so each writes two copies: stage_<name>_best.pt, then last.pt (and
# before the reordering: last.pt, then best.pt). Copies 5 and 6 are the last epoch's: a kill there
# once left a best.pt one epoch stale that the resumed run tested.
@pytest.mark.parametrize("copy", [5, 6])
def test_a_kill_between_checkpoint_writes_leaves_a_pair_that_resumes_exactly(
    tmp_path, monkeypatch, copy, run_config, final_weights
):
    straight = run_config(tmp_path / "straight", *SHORT)
    original, calls = run_checkpoints.copy_checkpoint, []

    def copy_or_die(source, target):
        calls.append(target.name)
        if len(calls) == copy:
            raise Killed
        original(source, target)

    monkeypatch.setattr(run_checkpoints, "copy_checkpoint", copy_or_die)
    with pytest.raises(Killed):
        run_config(tmp_path / "cut", *SHORT)
    monkeypatch.undo()
    assert not list((tmp_path / "cut").rglob("*.tmp"))
    resumed = run_config(tmp_path / "resumed", *SHORT, f"ckpt_path={tmp_path / 'cut' / 'checkpoints' / 'last.pt'}")
    assert resumed["test/acc"] == straight["test/acc"]
    straight_weights, resumed_weights = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(straight_weights[k], resumed_weights[k]) for k in straight_weights)


def test_debug_overfit_learns_its_few_batches_far_better_than_fresh_ones(tmp_path, run_config, read_history):
    # The same 2 batches every epoch (order and augmentation too) are learned by heart; 2 fresh
    # batches per epoch, the same number of steps, are not.
    common = ["model=simple_cnn", "hardware=cpu", "trainer.progress=false", "dataset.augment.enabled=false"]
    common += ["stages.train.epochs=20", "scheduler=none", "optimizer.lr=3e-3"]
    run_config(tmp_path / "overfit", *common, "debug=overfit")
    run_config(tmp_path / "fresh", *common, "debug=default", "trainer.limit_train_batches=2")
    overfit, fresh = read_history(tmp_path / "overfit"), read_history(tmp_path / "fresh")
    assert [r["step"] for r in overfit] == [r["step"] for r in fresh] == [str(2 * e) for e in range(1, 21)]
    assert float(overfit[-1]["train/loss"]) < 0.5 * float(fresh[-1]["train/loss"])
