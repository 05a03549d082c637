"""What a user sees when things go wrong, through the command line: each refusal is one
line and exit code 1, opens no MLflow run and leaves every earlier file as it was; a
run stopped by SIGTERM at any moment resumes to the uninterrupted run's metrics (or is
refused clearly when nothing was saved); SIGKILL during a checkpoint write keeps the
previous checkpoint."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import qtrain
from qtrain.engine.checkpoint import load_checkpoint

ROOT = Path(qtrain.CONFIG_DIR).parent  # the repository

FAST = ["model=simple_cnn", "debug=fast", "hardware=cpu"]
QUANTUM = ["model=cnn_quantum", "debug=fast", "hardware=cpu"]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, write_image_folder, run_cli) -> Path:
    """Files a user already has: a finished run, a run stopped before its first
    checkpoint, image folders (one with a damaged PNG, one of a single class), a damaged
    checkpoint."""
    root = tmp_path_factory.mktemp("earlier")
    assert run_cli(*FAST, f"hydra.run.dir={root / 'run'}", cwd=root).returncode == 0
    (root / "unsaved" / ".hydra").mkdir(parents=True)
    write_image_folder(root / "images")
    (root / "images" / "b" / "3.png").write_bytes(b"\x89PNG but not really")
    write_image_folder(root / "one_class", classes=("only",))
    (root / "damaged.pt").write_bytes(b"not a checkpoint at all")
    return root


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


IMAGES = ["dataset=image_folder", "dataset.num_classes=3", "dataset.image_size=16"]

# (overrides, the end of the one line), with {earlier} the fixture's folder.
REFUSALS = {
    "missing checkpoint": (["ckpt_path=/no/such/last.pt"], "ckpt_path=/no/such/last.pt: no such file; give a"),
    "damaged checkpoint": (["ckpt_path={earlier}/damaged.pt"], "not a readable checkpoint: damaged, or not a file"),
    "nothing saved yet": (
        ["ckpt_path={earlier}/unsaved/checkpoints/last.pt"],
        "its run stopped before it saved a checkpoint; start that run anew",
    ),
    "resume, other settings": (
        ["ckpt_path={earlier}/run/checkpoints/last.pt", "optimizer.lr=0.5"],
        "the checkpoint's run used other settings",
    ),
    "missing mnist": (
        ["dataset=mnist", "dataset.root=/no/such/dir", "dataset.download=false"],
        "dataset.root=/no/such/dir: no mnist IDX files",
    ),
    "feature map": ([*QUANTUM, "model.quantum.feature_map=bogus"], "model.quantum.feature_map=bogus: use one of"),
    "ansatz": ([*QUANTUM, "model.quantum.ansatz=bogus"], "model.quantum.ansatz=bogus: use one of"),
    "observables": ([*QUANTUM, "model.quantum.observables=bogus"], "model.quantum.observables=bogus: use z, zz"),
    "no qubits": ([*QUANTUM, "model.quantum.n_qubits=0"], "model.quantum.n_qubits=0: must be a positive integer"),
    "backend": ([*QUANTUM, "model.quantum.backend=bogus"], "model.quantum.backend=bogus: use one of torch, qiskit"),
    "reps": ([*QUANTUM, "model.quantum.reps=-1"], "model.quantum.reps=-1: must be an integer >= 0"),
    "os.system": (["model._target_=os.system"], "model._target_=os.system: not a callable configs may name"),
    "eval": (["model._target_=builtins.eval"], "model._target_=builtins.eval: not a callable configs may name"),
    "torch.load": (["model._target_=torch.load"], "model._target_=torch.load: not a callable configs may name"),
    "callback": (
        ["+hydra.callbacks.evil._target_=os.system"],
        "hydra.callbacks.evil._target_=os.system: not a callable configs may name",
    ),
    "damaged image": ([*IMAGES, "dataset.root={earlier}/images"], "3.png is not a readable image (1 such files)"),
    "one class": ([*IMAGES, "dataset.root={earlier}/one_class"], "has 1 class (['only']); a classifier needs"),
    "run dir is a file": (["hydra.run.dir={earlier}/damaged.pt"], "damaged.pt: is a file; give a folder for the run"),
    "run dir under a file": (["hydra.run.dir={earlier}/damaged.pt/run"], "cannot write there (NotADirectoryError"),
    "run dir holds a run": (["hydra.run.dir={earlier}/run"], "already holds a run, which would be overwritten"),
    "typo": (["+stages.train.epoch=3"], "did you mean stages.train.epochs?"),
    "unknown key": (["+foo=1"], "foo=1: not a qtrain setting; accepted: seed,"),
    "seed": (["seed=1.5"], "seed=1.5: must be an integer"),
    "weight decay": (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1: must be a number >= 0"),
    "optimizer argument": (["+optimizer.foo=1"], "optimizer.foo=1: not an argument of torch.optim.Adam"),
}


@pytest.mark.slow  # a command-line run per case (about 6 s each)
@pytest.mark.parametrize("case", REFUSALS)
def test_a_refusal_is_one_line_exit_1_no_mlflow_run_and_nothing_earlier_changed(earlier, tmp_path, case, run_cli):
    overrides, message = REFUSALS[case]
    overrides = [o.format(earlier=earlier) for o in overrides]
    if not any(o.startswith("hydra.run.dir=") for o in overrides):
        overrides.append(f"hydra.run.dir={tmp_path / 'run'}")
    before = snapshot(earlier)
    tracked = ["tracking=mlflow", f"tracking.mlflow.uri=sqlite:///{tmp_path}/mlflow.db"]
    result = run_cli(*FAST, *overrides, *tracked, cwd=tmp_path)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert snapshot(earlier) == before


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "qtrain", *args]


# Three epochs of ten steps: a run a signal can stop in each of its phases.
LONG = ["model=simple_cnn", "hardware=cpu", "trainer.progress=false", "tracking=none", "stages.train.epochs=3"]
LONG += ["trainer.limit_train_batches=10", "dataset.batch_size=16", "trainer.accumulate_batches=1"]


def final_metrics(run_dir: Path) -> dict:
    saved = json.loads((run_dir / "metrics.json").read_text())
    return {key: saved[key] for key in ("test/acc", "test/loss", "val/acc_best")}


# Runs qtrain and sends itself SIGTERM at the n-th event of a phase (SIGTERM_AT=phase:n):
# while the data is read (start-up), at an optimizer step, inside a checkpoint write
# (between writing the temporary file and its fsync), as the final test begins.
SIGTERM_AT = """
import os, signal, sys
import qtrain.data.digits, qtrain.engine.fit, qtrain.engine.loop

phase, n = os.environ["SIGTERM_AT"].split(":")
seen = {"n": 0}

def at(original, wanted):
    def hooked(*args, **kwargs):
        if phase == wanted:
            seen["n"] += 1
            if seen["n"] == int(n):
                os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)
    return hooked

qtrain.data.digits.DigitsData.setup = at(qtrain.data.digits.DigitsData.setup, "startup")
qtrain.engine.loop.optimizer_step = at(qtrain.engine.loop.optimizer_step, "step")
qtrain.engine.fit.Trainer.test = at(qtrain.engine.fit.Trainer.test, "test")
fsync, checkpoint_fsync = os.fsync, at(os.fsync, "write")
os.fsync = lambda fd: (checkpoint_fsync if "checkpoints/." in os.readlink(f"/proc/self/fd/{fd}") else fsync)(fd)
from qtrain.__main__ import cli

sys.argv[0] = "qtrain"
cli()
"""

# Each phase, at a seeded event: 30 optimizer steps, at least 3 checkpoint writes.
draw = random.Random(0).randint
SIGTERM_MOMENTS = ["startup:1", f"step:{draw(1, 30)}", f"step:{draw(1, 30)}", f"write:{draw(1, 3)}", "test:1"]


@pytest.mark.slow  # an uninterrupted run, then five stopped ones and their resumes
def test_a_sigterm_in_any_phase_resumes_to_the_same_metrics_or_is_refused_clearly(tmp_path, run_cli):
    assert run_cli(*LONG, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path).returncode == 0
    straight = final_metrics(tmp_path / "straight")
    for n, moment in enumerate(SIGTERM_MOMENTS):
        run_dir = tmp_path / f"cut{n}"
        stopped = subprocess.run(
            [sys.executable, "-c", SIGTERM_AT, *LONG, f"hydra.run.dir={run_dir}"],
            check=False, cwd=tmp_path, env={**os.environ, "SIGTERM_AT": moment, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert stopped.returncode == 128 + signal.SIGTERM, (moment, stopped.stderr[-3000:])
        output = stopped.stdout + stopped.stderr
        said = [line for line in output.splitlines() if "signal 15" in line]
        assert len(said) == 1 and "Traceback" not in output, (moment, output[-3000:])
        last = run_dir / "checkpoints" / "last.pt"
        resumed = run_cli(*LONG, f"ckpt_path={last}", f"hydra.run.dir={tmp_path / f'resumed{n}'}", cwd=tmp_path)
        if moment.startswith("startup"):  # nothing saved yet: refused in one clear line
            assert said[0].endswith("stopped by signal 15") and not last.exists()
            assert resumed.returncode == 1
            (line,) = [line for line in (resumed.stdout + resumed.stderr).splitlines() if line.strip()]
            assert line.endswith(f"ckpt_path={last}: its run stopped before it saved a checkpoint; start that run anew")
        else:
            assert said[0].endswith(f"stopped by signal 15; resume with ckpt_path={last}"), (moment, said)
            assert resumed.returncode == 0, (moment, resumed.stderr[-3000:])
            assert final_metrics(tmp_path / f"resumed{n}") == straight, moment
            if moment.startswith("test"):  # stopped after its last epoch: the resume only tests
                assert len(load_checkpoint(last)["state"]["history"]) == 3


KILL_AT_THE_WRITE = """
import os, signal, sys
writes = {"n": 0}
fsync = os.fsync

def fsync_or_die(fd):  # atomic_write has written the temporary file and asks for it on disk
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and "last.pt" in os.readlink(f"/proc/self/fd/{fd}"):
        writes["n"] += 1
        if writes["n"] == int(os.environ["KILL_AT_WRITE"]):
            os.kill(os.getpid(), signal.SIGKILL)
    fsync(fd)

os.fsync = fsync_or_die
from qtrain.__main__ import cli

sys.argv[0] = "qtrain"
cli()
"""


@pytest.mark.slow  # three command-line runs
def test_a_sigkill_while_last_pt_is_written_keeps_the_previous_one_and_resume_cleans_up(tmp_path, run_cli):
    overrides = [*LONG, "stages.train.epochs=3", "trainer.limit_train_batches=6"]
    assert run_cli(*overrides, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path).returncode == 0
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_THE_WRITE, *overrides, f"hydra.run.dir={tmp_path / 'cut'}"],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "KILL_AT_WRITE": "3", "PYTHONPATH": str(ROOT)},
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    checkpoints = tmp_path / "cut" / "checkpoints"
    (stale,) = checkpoints.glob(".last.pt.*.tmp")  # SIGKILL runs no cleanup
    last = load_checkpoint(checkpoints / "last.pt")  # the previous epoch's, whole
    assert last["state"]["history"][-1]["epoch"] == 2
    resumed = run_cli(
        *overrides, f"ckpt_path={checkpoints / 'last.pt'}", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not stale.exists()
    assert final_metrics(tmp_path / "resumed") == final_metrics(tmp_path / "straight")
