"""Tables of a sweep: one metric, rows × columns of axis values, mean ± std over seeds.

Every axis that varies must be a row, a column, or aggregated over (``over``, default the seed
axis); the table refuses to silently average over anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InrlabError

HIGHER_IS_BETTER = ("psnr", "ssim", "ms_ssim")


@dataclass
class Cell:
    """The runs of one (row, column): metric values of finished runs and counts of the others."""

    values: list[float] = field(default_factory=list)
    failed: int = 0
    unfinished: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None below two values."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None


@dataclass
class Table:
    metric: str
    rows: list[str]  # axis names spanning the rows
    cols: list[str]
    over: list[str]
    row_keys: list[tuple[str, ...]]
    col_keys: list[tuple[str, ...]]
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Cell]

    def cell(self, r: tuple[str, ...], c: tuple[str, ...]) -> Cell:
        return self.cells.get((r, c), Cell())


def resolve_axis(name: str, axes: list[str]) -> str:
    """Axis ``name`` exactly, or the one axis whose dotted name ends with ``.name``."""
    if name in axes:
        return name
    hits = [a for a in axes if a.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    raise InrlabError(f"{'ambiguous' if hits else 'unknown'} axis {name!r}: the sweep's axes are "
                      f"{', '.join(axes) or '(none)'}")


def _split(spec: str | list[str] | None, axes: list[str]) -> list[str] | None:
    if spec is None:
        return None
    names = spec.split(",") if isinstance(spec, str) else spec
    return [resolve_axis(n.strip(), axes) for n in names if n.strip()]


def make_table(runs: list[dict[str, Any]], axes: list[str], *, rows: str | list[str] | None = None,
               cols: str | list[str] | None = None, metric: str = "psnr",
               over: str | list[str] | None = None) -> Table:
    """Pivot store rows (dicts with ``axes``, ``status``, ``metrics``) into a :class:`Table`."""
    if not runs:
        raise InrlabError("the sweep has no runs yet: run `inrlab sweep run FILE` first")
    over_l = _split(over, axes)
    if over_l is None:
        over_l = ["seed"] if "seed" in axes else []
    cols_l = _split(cols, axes)
    rows_l = _split(rows, axes)
    free = [a for a in axes if a not in over_l]
    if cols_l is None:
        rest = [a for a in free if a not in (rows_l or [])]
        cols_l = ["preset"] if "preset" in rest else rest[-1:] if len(rest) > 1 or rows_l else []
    if rows_l is None:
        rows_l = [a for a in free if a not in cols_l]
    for a in rows_l + cols_l:
        if a in over_l:
            raise InrlabError(f"axis {a!r} is both shown and averaged over: drop it from --over")
    shown = set(rows_l) | set(cols_l) | set(over_l)
    varying = [a for a in axes if a not in shown and len({r["axes"].get(a) for r in runs}) > 1]
    if varying:
        raise InrlabError(f"axis {varying[0]!r} varies but is neither in --rows, --cols nor --over: "
                          f"add it to one of them")
    known = sorted({k for r in runs for k, v in (r.get("metrics") or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if any(r["status"] == "finished" for r in runs) and metric not in known:
        raise InrlabError(f"unknown metric {metric!r}: the runs recorded {', '.join(known)}")
    row_keys: list[tuple[str, ...]] = []
    col_keys: list[tuple[str, ...]] = []
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Cell] = {}
    for r in runs:
        rk = tuple(str(r["axes"].get(a)) for a in rows_l)
        ck = tuple(str(r["axes"].get(a)) for a in cols_l)
        if rk not in row_keys:
            row_keys.append(rk)
        if ck not in col_keys:
            col_keys.append(ck)
        cell = cells.setdefault((rk, ck), Cell())
        value = (r.get("metrics") or {}).get(metric)
        if r["status"] == "finished" and isinstance(value, (int, float)) and math.isfinite(value):
            cell.values.append(float(value))
        elif r["status"] == "failed":
            cell.failed += 1
        else:
            cell.unfinished += 1
    return Table(metric, rows_l, cols_l, over_l, row_keys, col_keys, cells)


def _fmt(v: float, ref: float) -> str:
    return f"{v:.2f}" if abs(ref) >= 10 else f"{v:.4f}"


def cell_text(cell: Cell) -> str:
    """``mean ± std`` (std over ≥ 2 values), with the failed / unfinished runs of the cell noted."""
    if cell.mean is None:
        text = "failed" if cell.failed else "–"
    else:
        text = _fmt(cell.mean, cell.mean)
        if cell.std is not None:
            text += f" ± {_fmt(cell.std, cell.mean)}"
    notes = [f"{k} {w}" for k, w in ((cell.failed, "failed"), (cell.unfinished, "unfinished"))
             if k and cell.mean is not None]
    return text + (f" ({', '.join(notes)})" if notes else "")


def _best(table: Table, r: tuple[str, ...]) -> float | None:
    if not table.metric.startswith(HIGHER_IS_BETTER):
        return None
    means = [m for c in table.col_keys if (m := table.cell(r, c).mean) is not None]
    return max(means) if len(means) > 1 else None


def markdown(df: pd.DataFrame) -> str:
    """GitHub Markdown of ``df``'s columns and rows (index dropped): floats with 2 decimals from
    10 up, else 4 significant digits; missing values as –; ``|`` in text escaped."""
    def text(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    head = [text(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def frame(table: Table, bold_best: bool = False) -> pd.DataFrame:
    """The table's cells as text (``cell_text``), one row per row key; with ``bold_best`` the
    best mean of a row is wrapped in ``**`` (PSNR/SSIM-like metrics)."""
    corner = " / ".join(table.rows) or table.metric
    if table.cols:
        corner += " \\ " + " / ".join(table.cols)
    recs = []
    for r in table.row_keys:
        best = _best(table, r) if bold_best else None
        rec = {corner: " / ".join(r) or "all"}
        for c in table.col_keys:
            cell = table.cell(r, c)
            text = cell_text(cell)
            rec[" / ".join(c) or table.metric] = f"**{text}**" if best is not None and \
                cell.mean == best else text
        recs.append(rec)
    return pd.DataFrame.from_records(recs)


def aggregation(table: Table) -> str:
    """How the cells aggregate runs, e.g. ``psnr: mean ± std over seed.``"""
    agg = f"mean ± std over {', '.join(table.over)}" if table.over else "one run per cell"
    return f"{table.metric}: {agg}."


def to_markdown(table: Table) -> str:
    """GitHub Markdown; the best mean of a row is bold for PSNR/SSIM-like metrics."""
    return markdown(frame(table, bold_best=True)) + f"\n{aggregation(table)}\n"


def to_csv(table: Table) -> str:
    """Tidy CSV: one line per cell with the axis values, mean, std, n, failed, unfinished."""
    m = table.metric
    recs = [{**dict(zip(table.rows, r, strict=True)), **dict(zip(table.cols, c, strict=True)),
             f"{m}_mean": cell.mean, f"{m}_std": cell.std, "n": cell.n, "failed": cell.failed,
             "unfinished": cell.unfinished}
            for r in table.row_keys for c in table.col_keys for cell in [table.cell(r, c)]]
    return pd.DataFrame.from_records(recs).to_csv(index=False, float_format="%.6g",
                                                  lineterminator="\n")
