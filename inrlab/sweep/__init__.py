"""Experiments at scale: sweep files → a plan of runs → executors → a SQLite store → tables, report.

    sweep = load_sweep("configs/sweeps/example.toml")
    run_sweep(sweep, "sweeps/example", tier="quick", executor=LocalPool(2))

See docs/sweeps.md.
"""

from .executors import InProcess, LocalPool, RayExecutor, execute_run, make_executor
from .runner import SweepOutcome, run_sweep
from .spec import PlannedRun, Sweep, config_key, load_sweep
from .store import Store, SweepLock
from .table import Table, make_table, to_csv, to_markdown

__all__ = ["InProcess", "LocalPool", "PlannedRun", "RayExecutor", "Store", "Sweep", "SweepLock",
           "SweepOutcome", "Table", "config_key", "execute_run", "load_sweep", "make_executor",
           "make_table", "run_sweep", "to_csv", "to_markdown"]
