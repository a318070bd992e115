"""Timing helpers and table/JSON output shared by the benchmarks."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..utils import write_json


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int = 5,
              warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_ratio(fn: Callable[[], Any], ref: Callable[[], Any], device: torch.device,
               repeats: int = 5, warmup: int = 1) -> tuple[float, float, float]:
    """Median seconds of ``fn()``, of ``ref()``, and the median of their per-repeat ratio, each
    repeat timing ``fn`` and ``ref`` back to back (a shared machine's load then cancels)."""
    for _ in range(warmup):
        fn()
        ref()
    t_fn, t_ref = [], []
    for _ in range(repeats):
        for f, ts in ((fn, t_fn), (ref, t_ref)):
            sync(device)
            t = time.perf_counter()
            f()
            sync(device)
            ts.append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(t_fn, t_ref, strict=True)]
    return statistics.median(t_fn), statistics.median(t_ref), statistics.median(ratios)


def machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Fixed-width table of ``rows`` restricted to ``columns``."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_results(path: str | Path, name: str, rows: list[dict[str, Any]],
                  extra: dict[str, Any] | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_json(p, {"benchmark": name, "machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M"),
                   **(extra or {}), "rows": rows})
    print(f"wrote {p}")
    return p
