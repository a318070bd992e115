"""The results store: one SQLite file (``sweep.db``, WAL mode) per sweep folder.

One row per run, keyed by the hash of its resolved config. Every change is one transaction, so a
sweep killed at any moment leaves the store consistent: rows of finished runs stay finished, rows
caught ``running`` are picked up again by the next ``inrlab sweep run`` (which resumes them from
their checkpoints). Only one sweep writes a folder at a time (:class:`SweepLock`); readers
(``status``, ``table``, ``report``) need no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InrlabError
from ..files import contained, parse_json, plain_name
from .spec import PlannedRun

DB_NAME = "sweep.db"
LOCK_NAME = ".sweep.lock"
STATUSES = ("pending", "running", "finished", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,       -- hash of the resolved config
    label TEXT NOT NULL,
    tier TEXT NOT NULL,
    axes TEXT NOT NULL,         -- JSON {axis: value label}
    config TEXT NOT NULL,       -- JSON RunConfig
    run_dir TEXT NOT NULL,      -- relative to the sweep folder
    status TEXT NOT NULL DEFAULT 'pending',
    metrics TEXT,               -- JSON, the run's metrics.json
    error TEXT,                 -- one line
    traceback TEXT,
    host TEXT,
    device TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,               -- unix time
    finished REAL,
    wall_seconds REAL           -- wall time of the last attempt (training + loading + writing)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SweepLock:
    """Exclusive ``flock`` on ``DIR/.sweep.lock`` for the lifetime of a writing sweep."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> SweepLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InrlabError(f"cannot write to sweep folder {str(self.path.parent)!r} "
                              f"({e.strerror}): choose a writable --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InrlabError(f"another sweep (pid {holder}) is writing {str(self.path.parent)!r}: "
                              f"wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None

    @staticmethod
    def held(folder: Path) -> bool:
        """Whether some process holds the lock of ``folder`` right now."""
        path = folder / LOCK_NAME
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


class Store:
    """Rows of a sweep's runs in ``DIR/sweep.db``. ``readonly`` opens an existing store only."""

    def __init__(self, folder: str | Path, readonly: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if readonly and not self.path.exists():
            raise InrlabError(f"{str(self.folder)!r} holds no sweep ({DB_NAME} missing): give the "
                              f"folder that `inrlab sweep run` wrote")
        with self._guard("open"):
            uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
            self.conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if not readonly:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise InrlabError(f"sweep store {str(self.path)!r}: cannot {what} ({e}); finished runs "
                              f"recorded so far are kept: fix the folder (space, permissions) and "
                              f"run the sweep again") from None

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (rolled back on any error)."""
        with self._guard(what):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ writes
    def add_plan(self, runs: list[PlannedRun], tier: str) -> None:
        """Insert the planned runs not yet known (known rows keep their status and results) and
        remember this plan as the tier's current one."""
        with self._tx("record the plan") as c:
            for r in runs:
                c.execute("INSERT INTO runs (key, label, tier, axes, config, run_dir) "
                          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "label=excluded.label, axes=excluded.axes",
                          (r.key, r.label, tier, json.dumps(r.axes), json.dumps(r.config.to_dict()),
                           f"runs/{r.folder}"))
            self._set_meta(c, f"plan:{tier}", json.dumps([r.key for r in runs]))
            self._set_meta(c, f"axes:{tier}", json.dumps(list(runs[0].axes)))
            self._set_meta(c, "last_tier", tier)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx("write metadata") as c:
            self._set_meta(c, key, value)

    @staticmethod
    def _set_meta(c: sqlite3.Connection, key: str, value: str) -> None:
        c.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                  "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def mark_running(self, key: str) -> None:
        with self._tx("mark a run as running") as c:
            c.execute("UPDATE runs SET status='running', started=?, attempts=attempts+1, error=NULL, "
                      "traceback=NULL WHERE key=?", (time.time(), key))

    def record(self, key: str, result: dict[str, Any]) -> None:
        """Store a worker's result (status finished/failed, metrics, error, host, device, times)."""
        status = result["status"]
        if status not in ("finished", "failed"):
            status = "pending"
        with self._tx("record a result") as c:
            c.execute("UPDATE runs SET status=?, metrics=?, error=?, traceback=?, host=?, device=?, "
                      "finished=?, wall_seconds=? WHERE key=?",
                      (status, json.dumps(result.get("metrics")) if result.get("metrics") else None,
                       result.get("error"), result.get("traceback"), result.get("host"),
                       result.get("device"), time.time(), result.get("wall_seconds"), key))

    def reset_running(self) -> int:
        """Rows left ``running`` by a sweep that is gone → ``pending``; returns how many."""
        with self._tx("reset interrupted runs") as c:
            return c.execute("UPDATE runs SET status='pending' WHERE status='running'").rowcount

    # ------------------------------------------------------------------ reads
    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._guard("read metadata"):
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def rows(self, tier: str | None = None, plan_only: bool = True) -> list[dict[str, Any]]:
        """Rows of ``tier`` (default: the last one run), in plan order; JSON columns decoded.

        What is read is checked as if crafted: the tier must be a plain name and every
        ``run_dir`` must resolve inside the sweep folder (see :mod:`inrlab.files`)."""
        tier = _tier_name(tier or self.meta("last_tier"))
        with self._guard("read runs"):
            got = self.conn.execute("SELECT * FROM runs WHERE tier=?", (tier,)).fetchall()
        rows = {r["key"]: self._decode(r) for r in got}
        if not plan_only:
            return list(rows.values())
        plan = _json(self.meta(f"plan:{tier}", "[]") or "[]", f"plan of tier {tier!r}", list)
        return [rows[k] for k in plan if isinstance(k, str) and k in rows]

    def tiers(self) -> list[str]:
        with self._guard("read runs"):
            names = [r[0] for r in self.conn.execute("SELECT DISTINCT tier FROM runs ORDER BY tier")]
        return [_tier_name(t) for t in names]

    def _decode(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for k in ("axes", "config", "metrics"):
            d[k] = _json(d[k], f"{k} of run {d['key']!r}", dict) if d[k] else \
                ({} if k != "metrics" else None)
        contained(self.folder, d["run_dir"], f"sweep store {DB_NAME} run_dir of run {d['key']!r}")
        return d


def _tier_name(tier: object) -> str:
    return plain_name(tier, "sweep tier", f"the tier names a folder; a {DB_NAME} holding this is "
                      f"damaged or crafted: rerun the sweep into a new folder")


def _json(text: str, what: str, kind: type) -> Any:
    """A JSON column of the store, which must decode to a ``kind`` (dict or list)."""
    value = parse_json(text, f"sweep store {DB_NAME}: {what}")
    if not isinstance(value, kind):
        raise InrlabError(f"sweep store {DB_NAME}: {what} is not a JSON {kind.__name__}: the store "
                          f"is damaged; rerun the sweep into a new folder")
    return value
