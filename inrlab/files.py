"""Reading files a user (or an attacker) hands to inrlab: one rule for each hazard.

- **Containment.** A path read *from a file* (a scene's ``transforms_*.json`` ``file_path``, a
  sweep store's ``run_dir`` and tier, a run's ``config.json``) is resolved — symbolic links
  followed — and must lie inside the folder it belongs to (:func:`contained`); a name used as
  one folder level must be a plain name (:func:`plain_name`). Anything else is refused, so a
  crafted file can neither read nor write outside its folder.
- **What the path is.** Before reading, the path is opened without blocking and checked to be a
  regular file (:func:`open_regular`): a folder, a FIFO, a device (``/dev/zero``), a socket, a
  broken link and a symbolic-link loop each get their own one-line message instead of "not
  found", a hang or an endless read. Third-party readers (Pillow, NumPy, trimesh) get the path
  only after :func:`check_file` passed.
- **Size.** Text and JSON files inrlab parses itself are read with a cap
  (:func:`read_bytes`, ``INRLAB_MAX_FILE_MB``, see :mod:`inrlab.limits`) and parsed structures
  may nest at most :data:`MAX_NESTING` levels (a deeply nested ``config.json`` is one line, not
  a ``RecursionError``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from .errors import InrlabError
from .limits import max_file_bytes

MAX_NESTING = 64  # deepest nesting of a parsed JSON/TOML structure (a run config needs 4)
PLAIN_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]{0,127}")  # one folder level, not hidden


def plain_name(name: object, what: str, fix: str) -> str:
    """``name`` when it is a plain folder name (letters, digits, ``. _ + -``, not starting with
    ``.``), else an :class:`InrlabError` naming ``what`` and ``fix``."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise InrlabError(f"{what} {name!r} must be a plain folder name (letters, digits, '.', "
                          f"'_', '+', '-'; not starting with '.'; at most 128): {fix}")
    return name


def safe_filename(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9._+-]`` replaced by ``_`` and leading
    dots dropped: a file name made from user text (an axis label) that stays one folder level."""
    return re.sub(r"[^A-Za-z0-9._+\-]", "_", name).lstrip(".") or "_"


def contained(root: str | Path, relative: object, what: str) -> Path:
    """``root / relative`` resolved (symbolic links followed), refused unless it lies inside
    ``root`` resolved. ``relative`` must be a relative path string; ``what`` names where it was
    read from (``"scene.json frame 3 file_path"``)."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise InrlabError(f"{what} {relative!r} is not a path: give a relative path string")
    base = Path(root).resolve()
    if Path(relative).is_absolute():
        raise InrlabError(f"{what} {relative!r} is an absolute path: paths read from a file must "
                          f"be relative to its folder {str(base)!r}")
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError) as e:  # a symbolic-link loop on some Pythons
        raise InrlabError(f"{what} {relative!r} cannot be resolved ({e}): fix the path") from None
    if not target.is_relative_to(base):
        raise InrlabError(f"{what} {relative!r} points outside its folder {str(base)!r} (to "
                          f"{str(target)!r}): paths read from a file must stay inside it")
    return target


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def open_regular(path: str | Path, what: str) -> int:
    """A read-only descriptor of ``path`` after checking it is a regular file (opened with
    ``O_NONBLOCK``, so a FIFO cannot hang the open); the caller closes it. Each way of not being
    a readable file is its own one-line :class:`InrlabError`."""
    p = Path(path)
    shown = str(p)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if p.is_symlink():
            raise InrlabError(f"{what} {shown!r} is a broken symbolic link (to "
                              f"{os.readlink(p)!r}): fix or replace the link") from None
        raise InrlabError(f"{what} {shown!r} not found: check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InrlabError(f"{what} {shown!r} is a symbolic-link loop: fix the link") from None
        if e.errno == errno.ENOTDIR:
            raise InrlabError(f"{what} {shown!r} not found (a part of the path is a file, not a "
                              f"folder): check the path") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a socket; a folder on some systems
            kind = _kind(os.stat(p).st_mode)
            raise InrlabError(f"{what} {shown!r} is {kind}: give a regular file") from None
        raise InrlabError(f"cannot read {what} {shown!r} ({e.strerror}): fix the permissions or "
                          f"the path") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InrlabError(f"{what} {shown!r} is {_kind(mode)}: give a regular file")
    os.set_blocking(fd, True)
    return fd


def check_file(path: str | Path, what: str) -> Path:
    """``Path(path)`` once it is known to be a readable regular file (see :func:`open_regular`),
    for readers inrlab does not control (Pillow, NumPy, trimesh, SciPy)."""
    os.close(open_regular(path, what))
    return Path(path)


def read_bytes(path: str | Path, what: str) -> bytes:
    """The contents of regular file ``path``, refused beyond ``INRLAB_MAX_FILE_MB`` (checked on
    the size *and* while reading, for files that grow or lie about their size, as /proc does)."""
    cap = max_file_bytes()
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        data = b"" if size > cap else _read_at_most(fd, cap + 1)
    except OSError as e:
        raise InrlabError(f"cannot read {what} {str(path)!r} ({e.strerror}): fix the file or its "
                          f"permissions") from None
    finally:
        os.close(fd)
    if size > cap or len(data) > cap:
        raise InrlabError(f"{what} {str(path)!r} is larger than the limit of {cap / 2**20:,.0f} MB "
                          f"for files inrlab parses: give the right file, or raise the limit with "
                          f"INRLAB_MAX_FILE_MB")
    return data


def _read_at_most(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_text(path: str | Path, what: str) -> str:
    """:func:`read_bytes` decoded as UTF-8 (one line naming the byte when it is not)."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InrlabError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}): save it as "
                          f"UTF-8") from None


def check_nesting(obj: Any, what: str) -> Any:
    """``obj`` when its lists and dicts nest at most :data:`MAX_NESTING` levels (walked without
    recursion), else an :class:`InrlabError`."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) \
            else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_NESTING:
                    raise InrlabError(f"{what} nests deeper than {MAX_NESTING} levels: it is not "
                                      f"an inrlab file; fix or regenerate it")
                stack.append((child, depth + 1))
    return obj


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON text → Python, nesting checked; any syntax error (or a nesting deep enough to exhaust
    the parser) is one line naming ``what``."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise InrlabError(f"{what} nests deeper than {MAX_NESTING} levels: it is not an inrlab "
                          f"file; fix or regenerate it") from None
    except (ValueError, TypeError) as e:
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise InrlabError(f"{what} is not valid JSON ({first}): fix or regenerate it") from None
    return check_nesting(data, what)


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file read with :func:`read_text` and parsed by :func:`parse_json`."""
    return parse_json(read_text(path, what), f"{what} {str(path)!r}")
