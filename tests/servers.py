"""Real servers on loopback for the end-to-end tests (pytest -m e2e): a PostgreSQL
cluster in a temporary folder and an `mlflow server`; each test skips, with the
reason, where the program is missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "e2e-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s: {log.read_text()[-2000:]}")


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A PostgreSQL server on a cluster of its own; `stop` and `start` restart it on the
    same port and data, as an administrator's restart would."""

    def __init__(self, command: list, stop_command: list, port: int, log: Path):
        self.command, self.stop_command, self.port, self.log = command, stop_command, port, log
        self.url = f"postgresql://qtrain:{PASSWORD}@127.0.0.1:{port}/optuna"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, 30, self.log)

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, as in a restart."""
        if self.process is not None and self.process.poll() is None:
            subprocess.run(self.stop_command, check=True, capture_output=True)
            self.process.wait(timeout=60)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A PostgreSQL cluster on 127.0.0.1 (password login) with an empty database
    `optuna`, running; its `url` is in the README's form, postgresql://user:password@host:port/db."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # Its own folder under /tmp: pytest's are private to the user running the tests.
    folder = Path(tempfile.mkdtemp(prefix="qtrain-postgres-"))
    (folder / "password").write_text(PASSWORD)
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster runs as Debian's postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (folder, folder / "password"):
            shutil.chown(path, "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(
        [
            *as_user,
            bin_dir / "initdb",
            "-D",
            data,
            "-U",
            "qtrain",
            f"--pwfile={folder / 'password'}",
            "--auth=scram-sha-256",
        ],
        check=True,
        capture_output=True,
    )
    command = [*as_user, bin_dir / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", folder]
    stop = [*as_user, bin_dir / "pg_ctl", "stop", "-D", data, "-m", "fast"]
    server = Postgres(command, stop, port, folder / "postgres.log")
    try:
        server.start()
        import psycopg

        with psycopg.connect(f"postgresql://qtrain:{PASSWORD}@127.0.0.1:{port}/postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE optuna")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class MlflowServer:
    """`mlflow server` on a free loopback port, its store and artifacts in `folder`;
    `kill` and `start` restart it on the same port and store, as a crash and its
    supervisor would."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.folder / "mlflow-server.log"
        self.process = subprocess.Popen(
            [
                Path(sys.executable).parent / "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, 120, log)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)
            self.process.wait(timeout=30)


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[MlflowServer]:
    """An `mlflow server`, running, in `folder`."""
    server = MlflowServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.kill(signal.SIGTERM)


def slurm_cluster() -> None:
    """The SLURM cluster `make slurm-up` starts, answering with an idle node; else the
    test skips, or fails where the cluster is required (QTRAIN_REQUIRE_SLURM=1, as CI sets)."""
    try:
        states = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        states, reason = [], f"sinfo: {error}"
    else:
        reason = f"no node up (sinfo: {' '.join(states) or 'nothing'})"
    if not any(state in ("idle", "mix", "alloc") for state in states):
        message = f"no SLURM cluster: {reason}; start one with make slurm-up"
        if os.environ.get("QTRAIN_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
