"""Writing a run's files whole or not at all, and torch files tagged with their format."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import pickle
import shutil
from pathlib import Path

import torch

from qtrain.errors import DiskFull


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_kwargs):
    """Write `path` whole or not at all. The caller writes into memory; then the bytes go
    to a temporary file beside `path`, are fsynced and renamed over it, so a kill at any
    moment leaves the old file or the new one, never half. Knowing the size first, a
    disk too small for it is said (DiskFull: the file, the space needed and free) before
    anything is written, and a disk that fills while writing leaves nothing behind. The
    temporary file is locked while written: remove_dead_temporaries tells a killed
    writer's file by its lock, whoever now has its process id."""
    buffer = io.BytesIO() if "b" in mode else io.StringIO(newline="")  # newlines translated on the way out
    yield buffer
    content = buffer.getvalue()
    needed = len(content) if isinstance(content, bytes) else len(content.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise DiskFull(path, needed, free)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **open_kwargs) as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        tmp.unlink(missing_ok=True)
        raise DiskFull(path, needed, shutil.disk_usage(path.parent).free) from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_dead_temporaries(folder: Path) -> list[Path]:
    """The `.<name>.<pid>.tmp` files that atomic_write left in `folder` when its process
    was killed (SIGKILL runs no `finally`), removed: those no live writer holds locked."""
    removed = []
    for tmp in folder.glob(".*.*.tmp"):
        with contextlib.suppress(FileNotFoundError), open(tmp, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written
            tmp.unlink()
            removed.append(tmp)
    return removed


def bytes_in(path: Path) -> int:
    """The size of a file, or of the files under a folder."""
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


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
    except Exception:  # noqa: BLE001 -- damaged bytes reach torch's reader as any of a dozen exceptions
        raise ValueError(f"not a readable {what}: damaged, or not a file torch.save wrote") from None
    if not isinstance(saved, dict) or saved.get("format") != fmt:
        raise ValueError(f"not a qtrain {what} (expected format {fmt})")
    return saved
