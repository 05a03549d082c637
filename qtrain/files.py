"""Writing a run's files whole or not at all, and torch files tagged with their format."""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

import torch


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_kwargs):
    """Open a temporary file beside `path`; on success fsync it and rename it over
    `path`. A kill at any moment leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_dead_temporaries(folder: Path) -> list[Path]:
    """The `.<name>.<pid>.tmp` files that atomic_write left in `folder` when its process
    was killed (SIGKILL runs no `finally`), removed; those of live processes are kept."""
    removed = []
    for tmp in folder.glob(".*.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def save_tagged(path: Path, fmt: str, payload: dict) -> None:
    """`payload` as a torch file tagged `format: fmt`, written atomically."""
    with atomic_write(path) as f:
        torch.save({"format": fmt, **payload}, f)


def load_tagged(path: Path, fmt: str, what: str) -> dict:
    """What `save_tagged(path, fmt, ...)` wrote. Raises ValueError saying why the file is
    not such a `what`: unreadable (damaged, foreign), or of another format."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # reading it would run the code it names (weights_only=False): never done
            raise ValueError(f"not a readable {what}: it holds objects other than tensors and plain values") from None
        raise ValueError(f"not a readable {what}: damaged, or not a file torch.save wrote") from None
    except Exception as error:  # noqa: BLE001 -- torch raises many types for a damaged or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"not a readable {what} ({type(error).__name__}: {reason})") from None
    if not isinstance(saved, dict) or saved.get("format") != fmt:
        raise ValueError(f"not a qtrain {what} (expected format {fmt})")
    return saved
