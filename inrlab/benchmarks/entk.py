"""``inrlab bench entk``: seconds and peak memory of the structured vs the Jacobian eNTK.

Every (preset, N, method) is measured in a fresh subprocess, so its peak resident memory
(``ru_maxrss``, CPU) or peak CUDA allocation is its own: ``extra_mb`` is the growth of the peak
during the kernel call. Structured: median of ``--repeats`` calls after one warm-up. Jacobian:
one call after a warm-up on 8 points (its cost grows as N·P), skipped when its Jacobian (N × P
float64) would exceed ``--max-jacobian-gb`` or when the previous N's time, scaled by (N/N_prev)²,
exceeds ``--max-seconds``; the table says so. Where both ran at the smallest N, ``rel_err`` is
‖K_structured − K_jacobian‖ / ‖K_jacobian‖.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from ..config import PRESETS, preset
from ..models import build_model
from ..utils import resolve_device, seed_everything
from .common import print_table, write_results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """time and peak memory of the structured vs Jacobian eNTK"""
    p.add_argument("--presets", nargs="+", default=["relu", "siren", "pe", "hash"],
                   choices=list(PRESETS))
    p.add_argument("--points", nargs="+", type=int, default=[256, 1024, 4096])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-jacobian-gb", type=float, default=6.0,
                   help="skip the Jacobian route when J (N × P float64) exceeds this")
    p.add_argument("--max-seconds", type=float, default=180.0,
                   help="skip the Jacobian route when its extrapolated time exceeds this")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench/results/entk.json")


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(name: str, n: int, method: str, repeats: int, threads: int | None,
            device: str) -> dict[str, Any]:
    """One measurement (run in a fresh process): seconds, peak and extra memory (MiB)."""
    from ..ntk import kernel

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    seed_everything(0)
    model = build_model(preset(name).model, 2, 3).to(dev)
    x = (torch.rand(n, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(dev)
    warm = x[:8] if method == "jacobian" else x
    kernel(model, warm, method)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    before = _peak_mb(dev)
    times = []
    for _ in range(repeats if method == "structured" else 1):
        t = time.perf_counter()
        k = kernel(model, x, method)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    peak = _peak_mb(dev)
    row = {"preset": name, "N": n, "method": method, "seconds": statistics.median(times),
           "peak_mb": peak, "extra_mb": peak - before,
           "params": sum(p.numel() for p in model.parameters())}
    if method == "jacobian":
        ks = kernel(model, x, "structured")
        row["rel_err"] = float((ks - k).norm() / k.norm())
    return row


def _in_subprocess(*args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(measure, *args).result()


def main(args: argparse.Namespace) -> int:
    dev = resolve_device(args.device)
    rows: list[dict[str, Any]] = []
    for name in args.presets:
        params = sum(p.numel() for p in build_model(preset(name).model, 2, 3).parameters())
        last_jac: tuple[int, float] | None = None
        for n in sorted(args.points):
            s = _in_subprocess(name, n, "structured", args.repeats, args.threads, args.device)
            rows.append(s)
            print(f"  {name} N={n} structured {s['seconds']:.3f} s", flush=True)
            jac_gb = n * params * 8 / 2**30
            guess = last_jac[1] * (n / last_jac[0]) ** 2 if last_jac else 0.0
            if jac_gb > args.max_jacobian_gb:
                why = f"skipped: J needs {jac_gb:.1f} GB > --max-jacobian-gb {args.max_jacobian_gb:g}"
            elif guess > args.max_seconds:
                why = f"skipped: ~{guess:.0f} s extrapolated > --max-seconds {args.max_seconds:g}"
            else:
                why = ""
            if why:
                rows.append({"preset": name, "N": n, "method": "jacobian", "note": why,
                             "params": params})
                print(f"  {name} N={n} jacobian {why}", flush=True)
                continue
            j = _in_subprocess(name, n, "jacobian", 1, args.threads, args.device)
            last_jac = (n, j["seconds"])
            j["speedup"] = j["seconds"] / s["seconds"]
            rows.append(j)
            print(f"  {name} N={n} jacobian {j['seconds']:.3f} s ({j['speedup']:.1f}× slower)",
                  flush=True)
    print(f"\neNTK time and memory, {dev}, {torch.get_num_threads()} threads")
    print_table(rows, ["preset", "params", "N", "method", "seconds", "peak_mb", "extra_mb",
                       "speedup", "rel_err", "note"])
    write_results(args.out, "entk", rows, {"device": str(dev), "points": args.points})
    return 0
