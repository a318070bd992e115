"""Small helpers shared across the package: devices, seeding, atomic file writes, safe loading,
folder locks."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from .errors import InrlabError


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InrlabError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InrlabError(f"device {device!r} requested but CUDA is not available: use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run is reproducible on the same device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and rename it over ``path``.

    Readers see the old file or the whole new one, never half of it; on any failure (disk full,
    Ctrl-C) the temporary file is removed and the old ``path`` is left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file + fsync + rename (a failed save keeps the old file
    and leaves no temporary file behind)."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def safe_torch_load(path: Path, map_location: Any = None) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``): a
    crafted pickle raises instead of running code."""
    return torch.load(path, map_location=map_location, weights_only=True)


def append_line(path: Path, line: str) -> None:
    """Append one text line to ``path`` with a single ``write`` on an ``O_APPEND`` descriptor, so
    a crash leaves whole lines only (at worst the last one missing, never half a line)."""
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "short write", str(path))
    finally:
        os.close(fd)


def prepare_output_folder(out: Path, marker: str, what: str, overwrite: bool) -> Path:
    """Check and create a results folder before any work: ``out`` must be a writable folder that
    is new, empty, or holds an earlier ``what`` result (file ``marker``), which only
    ``overwrite`` lets a command replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InrlabError(f"output path {str(out)!r} is a file: choose a folder for --out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).exists():
            raise InrlabError(f"output folder {str(out)!r} is not empty and holds no {what} "
                              f"result: choose another --out")
        if not overwrite:
            raise InrlabError(f"output folder {str(out)!r} already holds a {what} result: pass "
                              f"--overwrite to replace it or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InrlabError(f"cannot create output folder {str(out)!r} ({e.strerror}): choose a "
                          f"writable --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InrlabError(f"output folder {str(out)!r} is not writable: choose a writable --out")
    return out


class FolderLock:
    """An exclusive ``flock`` on ``folder/name`` held until :meth:`release` (or process death:
    the kernel drops the lock of a killed process, so a stale lock never blocks).

    ``what`` names the holder in the error, e.g. ``"a training run"``; the lock file keeps the
    holder's PID for that message."""

    def __init__(self, folder: Path, name: str, what: str, fix: str):
        self.path = Path(folder) / name
        self.fd: int | None = None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InrlabError(f"cannot write to folder {str(self.path.parent)!r} ({e.strerror}): "
                              f"{fix}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InrlabError(f"folder {str(self.path.parent)!r} is in use by {what} (PID "
                              f"{holder}): wait for it to finish or {fix}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self.fd is not None:
            self._finalizer()  # closing the descriptor releases the flock
            self.fd = None


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy/torch scalars and arrays (recursively) to plain JSON types; NaN/inf → None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")
