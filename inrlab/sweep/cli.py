"""``inrlab sweep run|status|table`` and ``inrlab report``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import InrlabError

EXECUTORS = ("inprocess", "local", "ray")


def sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run sweeps of signals × models × techniques × seeds",
                       description="Sweeps: see docs/sweeps.md for the sweep file format.")
    ssub = p.add_subparsers(dest="sweep_command", required=True)

    r = ssub.add_parser("run", help="run (or continue) a sweep file")
    r.add_argument("file", help="sweep file (TOML)")
    r.add_argument("--tier", help="tier of the sweep file (default: its default_tier, else quick)")
    r.add_argument("--out", help="sweep folder (default sweeps/NAME)")
    r.add_argument("--executor", choices=EXECUTORS, default="inprocess",
                   help="inprocess (default), local worker processes, or ray")
    r.add_argument("--workers", type=int, help="local: worker processes (default: one per GPU, "
                   "else per CPU core); ray without --address: CPUs of the local instance")
    r.add_argument("--devices", help="local: comma-separated GPU ids, one per worker in turn "
                   "(default: all visible GPUs; '' for CPU only)")
    r.add_argument("--address", help="ray: cluster address (host:port, ray://host:port or auto); "
                   "default: start a local instance")
    r.add_argument("--cpus-per-run", type=float, default=1, help="ray: CPUs per run (default 1)")
    r.add_argument("--gpus-per-run", type=float, help="ray: GPUs per run (default 1 when the "
                   "cluster has GPUs, else 0)")
    r.add_argument("--ray-timeout", type=float, default=30, help="ray: seconds to connect")
    r.add_argument("--skip-failed", action="store_true", help="do not retry runs that failed")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--dry-run", action="store_true", help="plan and check every run of the tier, "
                   "print the plan, run nothing")
    r.set_defaults(func=cmd_sweep_run, overrides=False)

    s = ssub.add_parser("status", help="counts of finished/failed/pending runs, and the errors")
    s.add_argument("dir", help="sweep folder")
    s.add_argument("--tier", help="tier (default: the last one run)")
    s.set_defaults(func=cmd_sweep_status, overrides=False)

    t = ssub.add_parser("table", help="the sweep's analysis (the paper's tables), or a metric as a "
                        "Markdown or CSV table, mean ± std over seeds")
    t.add_argument("dir", help="sweep folder")
    _table_args(t)
    t.add_argument("--format", choices=("md", "csv"), default="md")
    t.set_defaults(func=cmd_sweep_table, overrides=False)


REMOVED = {"repro": "inrlab sweep run configs/papers/NAME.toml (one file per paper; see README)",
           "fresh-validate": "inrlab sweep run configs/papers/fresh_validation.toml"}


def removed_parser(sub: Any) -> None:
    """Commands that became sweep files: each prints one line naming its replacement."""
    for name, instead in REMOVED.items():
        p = sub.add_parser(name, help=f"removed: use {instead}")
        p.add_argument("rest", nargs="*")
        for opt in ("--out", "--tier", "--device", "--progress", "--only", "--images"):
            p.add_argument(opt, nargs="*")  # the old options, so old command lines reach the message
        p.set_defaults(func=_removed(name, instead), overrides=False)


def _removed(name: str, instead: str) -> Any:
    def cmd(args: argparse.Namespace, extra: dict[str, str]) -> int:
        raise InrlabError(f"`inrlab {name}` is gone: run `{instead}`")
    return cmd


def report_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write a static HTML report of a sweep folder")
    p.add_argument("dir", help="sweep folder")
    _table_args(p)
    p.add_argument("--out", help="HTML file (default DIR/report.html)")
    p.set_defaults(func=cmd_report, overrides=False)


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", help="comma-separated axes for rows (default: the others)")
    p.add_argument("--cols", help="comma-separated axes for columns (default: preset, else the last)")
    p.add_argument("--over", help="axes averaged over (default: seed)")
    p.add_argument("--metric", help="metric of metrics.json (default psnr); --metric, --rows or "
                   "--cols show that table instead of the sweep's analysis")
    p.add_argument("--tier", help="tier (default: the last one run)")


def cmd_sweep_run(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .executors import make_executor
    from .runner import run_sweep
    from .spec import load_sweep

    sweep = load_sweep(args.file)
    tier = args.tier or sweep.default_tier
    plan = sweep.plan(tier)  # every error in the file surfaces before an executor starts
    out = Path(args.out or f"sweeps/{sweep.name}")
    if args.dry_run:
        for r in plan:
            print(f"  {r.label}  {r.key}" + (f"  job {r.job}" if r.job else ""))
        analysis = f", analysis {sweep.analysis['name']}" if sweep.analysis else ""
        print(f"sweep {sweep.name} [{tier}]: {len(plan)} runs planned{analysis}, into {out}")
        return 0
    devices = None if args.devices is None else [d for d in args.devices.split(",") if d.strip()]
    executor = make_executor(args.executor, workers=args.workers, devices=devices,
                             address=args.address, cpus_per_run=args.cpus_per_run,
                             gpus_per_run=args.gpus_per_run, ray_timeout=args.ray_timeout)
    t0 = time.time()
    try:
        res = run_sweep(sweep, out, tier=tier, executor=executor, retry_failed=not args.skip_failed,
                        progress=not args.quiet)
    finally:
        executor.close()
    print(f"sweep {sweep.name} [{tier}]: {res.planned} runs, {res.skipped} already done, "
          f"{res.finished} finished and {res.failed} failed now, in {time.time() - t0:.1f} s")
    print(f"sweep folder: {out}  (inrlab sweep table {out}; inrlab report {out})")
    if res.failed:
        print(f"{res.failed} runs failed: see `inrlab sweep status {out}`")
        return 1
    return 0


def cmd_sweep_status(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .store import Store, SweepLock

    store = Store(args.dir, readonly=True)
    tier = args.tier or store.meta("last_tier")
    rows = store.rows(tier)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "failed", "running",
                                                                "pending")}
    live = SweepLock.held(Path(args.dir))
    print(f"sweep {store.meta('name')} [{tier}] in {args.dir}: {len(rows)} runs — "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + ("  (a sweep is running now)" if live else ""))
    other = [t for t in store.tiers() if t != tier]
    if other:
        print(f"other tiers in this folder: {', '.join(other)} (--tier)")
    train_s = sum((r["metrics"] or {}).get("seconds") or 0 for r in rows if r["status"] == "finished")
    print(f"training time of finished runs: {train_s:.1f} s")
    for r in rows:
        if r["status"] == "failed":
            print(f"  failed   {r['label']} ({r['run_dir']}, host {r['host']}): {r['error']}")
        elif r["status"] == "running" and live:
            print(f"  running  {r['label']} since {time.strftime('%H:%M:%S', time.localtime(r['started']))}")
    store.close()
    return 0


def load_rows(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]], list[str],
                                               dict[str, Any] | None]:
    """(tier, store rows, axis names, analysis spec or None) a ``table``/``report`` asks for."""
    from .store import Store

    store = Store(args.dir, readonly=True)
    try:
        tier = args.tier or store.meta("last_tier")
        if tier not in store.tiers():
            raise InrlabError(f"no runs of tier {tier!r} in {args.dir}: choose one of "
                              f"{', '.join(store.tiers())}")
        rows = store.rows(tier)
        axes = json.loads(store.meta(f"axes:{tier}", "[]") or "[]")
        analysis = json.loads(store.meta("analysis", "null") or "null")
    finally:
        store.close()
    return tier, rows, axes, analysis


def _generic(args: argparse.Namespace) -> bool:
    return args.metric is not None or args.rows is not None or args.cols is not None


def _make_table(args: argparse.Namespace, rows: list[dict[str, Any]], axes: list[str]) -> Any:
    from .table import make_table

    return make_table(rows, axes, rows=args.rows, cols=args.cols, metric=args.metric or "psnr",
                      over=args.over)


def cmd_sweep_table(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .analyses import run_analysis
    from .table import to_csv, to_markdown

    tier, rows, axes, analysis = load_rows(args)
    if analysis and not _generic(args) and args.format == "md":
        print(run_analysis(Path(args.dir), tier, rows, axes, analysis).markdown(), end="")
        return 0
    table = _make_table(args, rows, axes)
    print(to_markdown(table) if args.format == "md" else to_csv(table), end="")
    return 0


def cmd_report(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from .analyses import run_analysis
    from .report import write_report

    tier, rows, axes, spec = load_rows(args)
    analysis = None
    if spec and not _generic(args):
        analysis = (spec["name"], run_analysis(Path(args.dir), tier, rows, axes, spec))
    try:
        table = _make_table(args, rows, axes)
    except InrlabError:
        if analysis is None:  # with an analysis, runs without the metric (jobs) show no table
            raise
        table = None
    path = write_report(Path(args.dir), table, rows, axes, Path(args.out) if args.out else None,
                        analysis)
    print(f"report: {path}")
    return 0
