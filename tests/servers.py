"""Real servers on loopback for the end-to-end tests (pytest -m e2e): a PostgreSQL
cluster in a temporary folder and an `mlflow server`; each test skips, with the
reason, where the program is missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
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


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A PostgreSQL cluster on 127.0.0.1 (password login) with an empty database
    `optuna`; yields its URL in the README's form, postgresql://user:password@host:port/db."""
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
    log = folder / "postgres.log"
    server = subprocess.Popen(
        [*as_user, bin_dir / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", folder],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server, 30, log)
        import psycopg

        with psycopg.connect(f"postgresql://qtrain:{PASSWORD}@127.0.0.1:{port}/postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE optuna")
        yield f"postgresql://qtrain:{PASSWORD}@127.0.0.1:{port}/optuna"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port, its store and artifacts in `folder`."""
    port, log = free_port(), folder / "mlflow-server.log"
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            mlflow,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, server, 120, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


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
