"""A static HTML report of a sweep folder: table, PSNR curves, reconstructions, error maps and the
diagnostic plots (spectra, NTK, ...) runs saved under ``diagnostics/*.png``.

The page is one ``report.html`` beside ``report_files/`` (figures made here); run pictures are
linked from the run folders, so the sweep folder must travel whole. A small script counts images
that fail to load and shows a banner (``data-broken-images`` on ``<body>``).
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .table import Table, _best, cell_text  # noqa: E402

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid img{width:160px;image-rendering:pixelated;display:block}.grid td{text-align:center;font-size:.85em}
.curves img,.diag img{max-width:48%;margin:.3em}#broken{background:#fdd;padding:.5em;display:none}
.err{color:#a00}
"""
_SCRIPT = """
window.addEventListener('load', function () {
  var bad = Array.prototype.filter.call(document.images, function (im) {
    return !(im.complete && im.naturalWidth > 0); });
  document.body.dataset.brokenImages = String(bad.length);
  document.body.dataset.images = String(document.images.length);
  if (bad.length) { var b = document.getElementById('broken'); b.style.display = 'block';
    b.textContent = bad.length + ' image(s) could not be loaded: was the sweep folder moved apart?'; }
});
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _rel(path: Path, page: Path) -> str:
    return html.escape(os.path.relpath(path, page.parent).replace(os.sep, "/"))


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
    for line in path.read_text().splitlines():
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


def write_report(folder: Path, table: Table, runs: list[dict[str, Any]], axes: list[str],
                 out: Path | None = None) -> Path:
    """Write ``folder/report.html`` (or ``out``) and its figures; returns the page's path."""
    page = (out or folder / "report.html").resolve()
    folder = folder.resolve()
    files = page.parent / (page.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    groups = _groups(table, runs)
    parts: list[str] = []
    counts = {s: sum(r["status"] == s for r in runs) for s in ("finished", "failed", "pending",
                                                               "running")}
    tier = runs[0]["tier"] if runs else "?"
    parts.append(f"<h1>Sweep report: {_esc(folder.name)} [{_esc(tier)}]</h1>"
                 f"<p id='summary'>{len(runs)} runs: " +
                 ", ".join(f"{v} {k}" for k, v in counts.items()) +
                 f". Axes: {_esc(', '.join(axes) or '(none)')}. Generated "
                 f"{time.strftime('%Y-%m-%d %H:%M')}.</p><div id='broken'></div>")

    # ---- table
    corner = " / ".join(table.rows) + (" \\ " + " / ".join(table.cols) if table.cols else "")
    head = "".join(f"<th>{_esc(' / '.join(c) or table.metric)}</th>" for c in table.col_keys)
    body = []
    for rk in table.row_keys:
        best = _best(table, rk)
        tds = []
        for ck in table.col_keys:
            cell = table.cell(rk, ck)
            text = _esc(cell_text(cell))
            bold = best is not None and best == cell.mean
            tds.append(f"<td class='num'>{f'<b>{text}</b>' if bold else text}</td>")
        body.append(f"<tr><th>{_esc(' / '.join(rk) or 'all')}</th>{''.join(tds)}</tr>")
    agg = f"mean ± std over {', '.join(table.over)}" if table.over else "one run per cell"
    parts.append(f"<h2>{_esc(table.metric)} ({_esc(agg)})</h2><table id='results'><tr><th>"
                 f"{_esc(corner)}</th>{head}</tr>{''.join(body)}</table>")

    # ---- curves
    metric = table.metric if table.metric.startswith(("psnr", "ssim", "ms_ssim")) else "psnr"
    curves = _curves(folder, table, groups, files, metric)
    if curves:
        parts.append(f"<h2>{_esc(metric)} over training steps</h2><div class='curves'>" +
                     "".join(f"<img src='{_rel(p, page)}' alt='curve'>" for p in curves) + "</div>")

    # ---- reconstructions and error maps (first finished run of each cell, e.g. seed 0)
    rec_rows, err_rows = [], []
    for i, rk in enumerate(table.row_keys):
        reps = {ck: _first(groups.get((rk, ck), [])) for ck in table.col_keys}
        some = next((r for r in reps.values() if r is not None), None)
        target = _target(some) if some is not None else None
        rec_cells, err_cells = [], []
        if target is not None:
            tpath = files / f"target_{i}.png"
            plt.imsave(tpath, target[..., 0] if target.shape[-1] == 1 else target, cmap="gray",
                       vmin=0, vmax=1)
            rec_cells.append(f"<td><img src='{_rel(tpath, page)}' alt='target'>target</td>")
            err_cells.append("<td></td>")
        for j, ck in enumerate(table.col_keys):
            r = reps[ck]
            png = folder / r["run_dir"] / "reconstruction.png" if r else None
            if r is None or not png.is_file():
                rec_cells.append("<td>–</td>")
                err_cells.append("<td>–</td>")
                continue
            v = (r["metrics"] or {}).get(table.metric)
            cap = f"{_esc(r['label'])}<br>{table.metric} {v:.3f}" if isinstance(v, float) \
                else _esc(r["label"])
            summary = folder / r["run_dir"] / "summary.png"
            link = f"<a href='{_rel(summary, page)}'>" if summary.is_file() else "<a>"
            rec_cells.append(f"<td>{link}<img src='{_rel(png, page)}' alt='reconstruction'></a>"
                             f"{cap}</td>")
            if target is not None:
                epath = files / f"error_{i}_{j}.png"
                try:
                    _error_map(png, target, epath, vmax=0.25)
                    err_cells.append(f"<td><img src='{_rel(epath, page)}' alt='error map'>"
                                     f"{_esc(' / '.join(ck))}</td>")
                except (ValueError, OSError):
                    err_cells.append("<td>–</td>")
        label = f"<th>{_esc(' / '.join(rk) or 'all')}</th>"
        rec_rows.append(f"<tr>{label}{''.join(rec_cells)}</tr>")
        if target is not None:
            err_rows.append(f"<tr>{label}{''.join(err_cells)}</tr>")
    parts.append("<h2>Reconstructions</h2><p>First finished run of each cell; click for the run's "
                 "summary (target, prediction, error, spectra, curve).</p>"
                 f"<table class='grid' id='reconstructions'>{''.join(rec_rows)}</table>")
    if err_rows:
        parts.append("<h2>Error maps</h2><p>|reconstruction − target|, mean over channels, "
                     "colour scale 0 … 0.25 (inferno).</p>"
                     f"<table class='grid' id='errors'>{''.join(err_rows)}</table>")

    # ---- diagnostics (spectra, NTK, ...) that runs saved
    diag = []
    for r in runs:
        pngs = sorted((folder / r["run_dir"] / "diagnostics").glob("*.png"))
        if pngs:
            diag.append(f"<h3>{_esc(r['label'])}</h3><div class='diag'>" +
                        "".join(f"<figure style='display:inline-block'><img src='{_rel(p, page)}' "
                                f"alt='{_esc(p.stem)}'><figcaption>{_esc(p.stem)}</figcaption>"
                                f"</figure>" for p in pngs) + "</div>")
    if diag:
        parts.append("<h2>Diagnostics (spectra, NTK, …)</h2>" + "".join(diag))

    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        parts.append("<h2>Failed runs</h2><ul>" + "".join(
            f"<li><b>{_esc(r['label'])}</b>: <span class='err'>{_esc(r['error'])}</span></li>"
            for r in failed) + "</ul>")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(folder.name)} "
           f"sweep</title><style>{_CSS}</style><script>{_SCRIPT}</script></head><body>"
           + "\n".join(parts) + "</body></html>\n")
    page.write_text(doc)
    return page
