"""A static HTML report of a sweep folder: table, PSNR curves, reconstructions, error maps and the
diagnostic plots (spectra, NTK, ...) runs saved under ``diagnostics/*.png``.

The page is one ``report.html`` (the jinja2 template ``templates/report.html``, autoescaped)
beside ``report_files/`` (figures made here); run pictures are linked from the run folders, so
the sweep folder must travel whole. A small script counts images
that fail to load and shows a banner (``data-broken-images`` on ``<body>``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..files import read_text  # noqa: E402
from .analyses import Result  # noqa: E402
from .table import Table, _best, aggregation, cell_text  # noqa: E402

# autoescape: run labels, signal paths and errors are user text
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("inrlab.sweep", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def _rel(path: Path, page: Path) -> str:
    return os.path.relpath(path, page.parent).replace(os.sep, "/")


def _groups(table: Table, runs: list[dict[str, Any]]) -> dict[tuple[Any, Any], list[dict[str, Any]]]:
    """Runs of each (row key, column key) of ``table``."""
    out: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in runs:
        rk = tuple(str(r["axes"].get(a)) for a in table.rows)
        ck = tuple(str(r["axes"].get(a)) for a in table.cols)
        out.setdefault((rk, ck), []).append(r)
    return out


def _history(folder: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    path = folder / run["run_dir"] / "history.jsonl"
    if not path.is_file():
        return []
    recs = []
    for line in read_text(path, "run history").splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return recs


def _curves(folder: Path, table: Table, groups: dict[Any, list[dict[str, Any]]], files: Path,
            metric: str) -> list[Path]:
    """One figure per table row: ``metric`` over steps for each column (mean ± std over seeds)."""
    out = []
    for i, rk in enumerate(table.row_keys):
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        drawn = False
        for j, ck in enumerate(table.col_keys):
            series: dict[int, list[float]] = {}
            for run in groups.get((rk, ck), []):
                for rec in _history(folder, run):
                    v = rec.get(metric)
                    if isinstance(v, (int, float)):
                        series.setdefault(int(rec["step"]), []).append(float(v))
            if not series:
                continue
            steps = np.array(sorted(series))
            mean = np.array([np.mean(series[s]) for s in steps])
            std = np.array([np.std(series[s]) for s in steps])
            name = " / ".join(ck) or metric
            ax.plot(steps, mean, label=name, color=f"C{j % 10}", marker="o" if len(steps) < 12 else None)
            ax.fill_between(steps, mean - std, mean + std, color=f"C{j % 10}", alpha=0.2)
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(" / ".join(rk) or "all runs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = files / f"curve_{i}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out.append(path)
    return out


def _target(run: dict[str, Any]) -> np.ndarray | None:
    """The run's target image (H, W, C) in [0, 1], or None for problems without one."""
    from ..config import SignalConfig, from_dict
    from ..problems import load_problem

    try:
        sig = load_problem(from_dict(SignalConfig, run["config"]["signal"]))
    except Exception:  # noqa: BLE001  (data moved or unreadable: the report shows what it can)
        return None
    img = sig.preview()
    return None if img is None else np.clip(img, 0, 1)


def _error_map(rec_png: Path, target: np.ndarray, path: Path, vmax: float) -> None:
    rec = mpimg.imread(rec_png)[..., :3].astype(np.float64)
    if target.shape[-1] == 1:
        rec = rec[..., :1]
    if rec.shape != target.shape:
        raise ValueError(f"reconstruction {rec.shape} does not match target {target.shape}")
    plt.imsave(path, np.abs(rec - target).mean(-1), cmap="inferno", vmin=0, vmax=vmax)


def _first(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [r for r in runs if r["status"] == "finished"]
    return done[0] if done else None


def write_report(folder: Path, table: Table | None, runs: list[dict[str, Any]], axes: list[str],
                 out: Path | None = None, analysis: tuple[str, Result] | None = None) -> Path:
    """Write ``folder/report.html`` (or ``out``) and its figures: the sweep's analysis (name,
    result) when it has one, the ``table`` of one metric (None: none), curves, reconstructions,
    error maps, diagnostics and failures; returns the page's path."""
    page = (out or folder / "report.html").resolve()
    folder = folder.resolve()
    files = page.parent / (page.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(r["status"] == s for r in runs) for s in ("finished", "failed", "pending",
                                                               "running")}
    view: dict[str, Any] = {
        "name": folder.name, "tier": runs[0]["tier"] if runs else "?", "runs": len(runs),
        "counts": ", ".join(f"{v} {k}" for k, v in counts.items()),
        "axes": ", ".join(axes) or "(none)", "generated": time.strftime("%Y-%m-%d %H:%M"),
        "analysis": None, "table": None, "curves": [], "curve_metric": "", "grid": [],
        "diagnostics": [], "failed": [{"label": r["label"], "error": r["error"]}
                                      for r in runs if r["status"] == "failed"]}
    if analysis is not None:
        name, res = analysis
        view["analysis"] = {
            "name": name, "notes": res.notes,
            "figures": [_rel(p.resolve(), page) for p in res.figures],
            "tables": [{"title": title, "head": [str(c) for c in df.columns],
                        "rows": [["–" if _missing(v) else _fmt(v) for v in row]
                                 for row in df.itertuples(index=False)]}
                       for title, df in res.tables]}
    if table is not None:
        groups = _groups(table, runs)
        view["table"] = _table_view(table)
        metric = table.metric if table.metric.startswith(("psnr", "ssim", "ms_ssim")) else "psnr"
        view["curve_metric"] = metric
        view["curves"] = [_rel(p, page) for p in _curves(folder, table, groups, files, metric)]
        view["grid"] = _grid(folder, table, groups, files, page)
    for r in runs:
        pngs = sorted((folder / r["run_dir"] / "diagnostics").glob("*.png"))
        if pngs:
            view["diagnostics"].append({"label": r["label"], "pngs": [
                {"src": _rel(p, page), "name": p.stem} for p in pngs]})
    page.write_text(_ENV.get_template("report.html").render(**view))
    return page


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"
    return str(v)


def _table_view(table: Table) -> dict[str, Any]:
    rows = []
    for rk in table.row_keys:
        best = _best(table, rk)
        cells = [table.cell(rk, ck) for ck in table.col_keys]
        rows.append({"label": " / ".join(rk) or "all",
                     "cells": [{"text": cell_text(c), "bold": best is not None and best == c.mean}
                               for c in cells]})
    return {"metric": table.metric, "agg": aggregation(table).split(": ", 1)[1].rstrip("."),
            "corner": " / ".join(table.rows) + (" \\ " + " / ".join(table.cols)
                                                if table.cols else ""),
            "head": [" / ".join(c) or table.metric for c in table.col_keys], "rows": rows}


def _grid(folder: Path, table: Table, groups: dict[Any, list[dict[str, Any]]], files: Path,
          page: Path) -> list[dict[str, Any]]:
    """Reconstructions and error maps: the first finished run of each cell (e.g. seed 0)."""
    out = []
    for i, rk in enumerate(table.row_keys):
        reps = {ck: _first(groups.get((rk, ck), [])) for ck in table.col_keys}
        some = next((r for r in reps.values() if r is not None), None)
        target = _target(some) if some is not None else None
        row: dict[str, Any] = {"label": " / ".join(rk) or "all", "target": None, "cells": [],
                               "errors": []}
        if target is not None:
            tpath = files / f"target_{i}.png"
            plt.imsave(tpath, target[..., 0] if target.shape[-1] == 1 else target, cmap="gray",
                       vmin=0, vmax=1)
            row["target"] = _rel(tpath, page)
        for j, ck in enumerate(table.col_keys):
            r = reps[ck]
            png = folder / r["run_dir"] / "reconstruction.png" if r else None
            if r is None or png is None or not png.is_file():
                row["cells"].append(None)
                row["errors"].append(None)
                continue
            v = (r["metrics"] or {}).get(table.metric)
            summary = folder / r["run_dir"] / "summary.png"
            row["cells"].append({
                "png": _rel(png, page), "summary": _rel(summary, page) if summary.is_file() else None,
                "caption": f"{r['label']} {table.metric} {v:.3f}" if isinstance(v, float)
                else r["label"]})
            err = None
            if target is not None:
                epath = files / f"error_{i}_{j}.png"
                try:
                    _error_map(png, target, epath, vmax=0.25)
                    err = {"png": _rel(epath, page), "caption": " / ".join(ck)}
                except (ValueError, OSError):
                    pass
            row["errors"].append(err)
        out.append(row)
    return out
