"""``inrlab bench all`` and ``inrlab bench plot``: every benchmark in one command, appended to a
JSON-lines history, and that history drawn over time.

Each history line is one figure (one number of one benchmark row)::

    {"time": "2026-11-29T08:00:00", "commit": "18dc1a6…", "dirty": false, "tier": "quick",
     "benchmark": "step-time", "key": "preset=siren kernels=auto", "figure": "ratio",
     "value": 1.31, "machine": {...}}

``key`` joins the row's descriptive (non-numeric) fields but the volatile ones (``VOLATILE``),
so the same key across lines is the same measurement at different times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import InrlabError
from .common import machine

# argv of each benchmark in the quick tier (a few minutes on a 2-core CPU) and the full tier
TIERS: dict[str, dict[str, list[str]]] = {
    "quick": {
        "step-time": ["--size", "128", "--repeats", "3"],
        "time-to-psnr": ["--cases", "demo"],
        "entk": ["--presets", "relu", "hash", "--points", "256", "--repeats", "1"],
        "iga": ["--presets", "pe", "--scale", "4", "--repeats", "1", "--no-jacobian"],
        "fresh": ["--candidates", "3", "--inits", "3", "--size", "128", "--timed-steps", "1"],
    },
    "full": {"step-time": ["--kernels", "eager", "auto"], "time-to-psnr": [], "entk": [],
             "iga": [], "fresh": []},
}
VOLATILE = ("top_op", "note")  # descriptive row fields that vary between runs: not in the key
DEFAULT_HISTORY = "bench/results/history.jsonl"
DEFAULT_FIGURES = ("step-time:ratio", "time-to-psnr:train_s")


def add_all_arguments(p: argparse.ArgumentParser) -> None:
    """run every benchmark and append one JSON line per figure to the history"""
    p.add_argument("--quick", action="store_true", help="small sizes: minutes on a 2-core CPU")
    p.add_argument("--only", nargs="+", default=None, choices=list(TIERS["full"]),
                   help="run just these benchmarks")
    p.add_argument("--history", default=DEFAULT_HISTORY)
    p.add_argument("--results", default="bench/results/all",
                   help="folder for each benchmark's JSON")


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    """draw the benchmark history (figures over time, one line per measurement key)"""
    p.add_argument("--history", default=DEFAULT_HISTORY)
    p.add_argument("--figures", nargs="+", default=list(DEFAULT_FIGURES),
                   metavar="BENCHMARK:FIGURE", help="e.g. step-time:ratio time-to-psnr:train_s")
    p.add_argument("--out", default="bench/results/history.png")


def git_commit() -> tuple[str | None, bool | None]:
    """(commit hash, whether the work tree has uncommitted changes) of the inrlab checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, check=True,
                               timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, dirty


def records(result: dict[str, Any], tier: str, stamp: dict[str, Any]) -> list[dict[str, Any]]:
    """One history record per numeric field of each row of a benchmark's JSON ``result``."""
    out = []
    for row in result["rows"]:
        desc = {k: v for k, v in row.items()
                if (isinstance(v, str | bool) or v is None) and k not in VOLATILE}
        key = " ".join(f"{k}={v}" for k, v in desc.items() if v not in (None, ""))
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append({**stamp, "tier": tier, "benchmark": result["benchmark"],
                            "key": key, "figure": k, "value": v})
    return out


def run_all(args: argparse.Namespace) -> int:
    from . import BENCHMARKS

    tier = "quick" if args.quick else "full"
    commit, dirty = git_commit()
    stamp = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": commit, "dirty": dirty,
             "machine": machine()}
    names = args.only or list(TIERS[tier])
    hist = Path(args.history)
    hist.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in names:
        add, main = BENCHMARKS[name]
        parser = argparse.ArgumentParser(prog=f"inrlab bench {name}")
        add(parser)
        out = Path(args.results) / f"{name}.json"
        bargs = parser.parse_args([*TIERS[tier][name], "--out", str(out)])
        print(f"== {name} {' '.join(TIERS[tier][name])}", flush=True)
        t = time.perf_counter()
        rc = main(bargs)
        if rc != 0:
            raise InrlabError(f"benchmark {name} failed (exit code {rc})")
        recs = records(json.loads(out.read_text()), tier, stamp)
        recs.append({**stamp, "tier": tier, "benchmark": name, "key": "", "figure": "wall_s",
                     "value": time.perf_counter() - t})
        with open(hist, "a") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
        total += len(recs)
    print(f"appended {total} records to {hist}")
    return 0


def load_history(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise InrlabError(f"no benchmark history at {str(p)!r}: run `inrlab bench all --quick`")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = load_history(args.history)
    wanted = []
    for f in args.figures:
        if ":" not in f:
            raise InrlabError(f"--figures expects BENCHMARK:FIGURE (e.g. step-time:ratio), got {f!r}")
        wanted.append(tuple(f.split(":", 1)))
    fig, axes = plt.subplots(len(wanted), 1, figsize=(9, 3.2 * len(wanted)), squeeze=False)
    runs = sorted({r["time"] for r in recs})
    for ax, (bench, figure) in zip(axes[:, 0], wanted, strict=True):
        sel = [r for r in recs if r["benchmark"] == bench and r["figure"] == figure]
        if not sel:
            raise InrlabError(f"the history has no figure {figure!r} of benchmark {bench!r}")
        for key in sorted({r["key"] for r in sel}):
            pts = sorted((runs.index(r["time"]), r["value"]) for r in sel if r["key"] == key)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=key or bench, ms=3)
        ax.set_title(f"{bench}: {figure}")
        ax.set_xticks(range(len(runs)), [t[5:16].replace("T", " ") for t in runs], rotation=30,
                      fontsize=7)
        ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0
