"""Registered analyses: a sweep store → a paper's tables (ours beside the paper's numbers) and
figures.

A sweep file names its analysis (``analysis = "iga_kodak"``, or an ``[analysis]`` table with
``name`` and parameters such as ``[analysis.paper]``, the published numbers); ``inrlab sweep
table DIR`` prints its tables and ``inrlab report DIR`` puts tables and figures at the top of
the page. An analysis is a function ``(Context) -> Result``, registered with
``@ANALYSES.register("name")`` or through the entry point group ``inrlab.analyses``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import InrlabError
from ...files import plain_name, read_text, safe_filename
from ..registry import Registry


@dataclass
class Context:
    """What an analysis reads: the sweep folder, the tier's store rows (plan order), the axis
    names, the analysis parameters of the sweep file, and where to write figures."""

    folder: Path
    tier: str
    rows: list[dict[str, Any]]
    axes: list[str]
    params: dict[str, Any]
    figures: Path

    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "finished" and r["metrics"]]

    def frame(self) -> pd.DataFrame:
        """One row per finished run: its axis values (numbers where they parse) and its scalar
        metrics."""
        recs = [{**r["axes"], **{k: v for k, v in r["metrics"].items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}}
                for r in self.finished()]
        if not recs:
            raise InrlabError(f"no finished runs of tier {self.tier!r} in {self.folder} yet: run "
                              f"the sweep first")
        df = pd.DataFrame.from_records(recs)
        for axis in self.axes:  # axis labels are text: numeric axes become numbers again
            try:
                df[axis] = pd.to_numeric(df[axis])
            except (ValueError, TypeError, KeyError):
                pass
        return df

    def history(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The run's ``history.jsonl`` records (lines cut by a crash are skipped)."""
        path = self.folder / row["run_dir"] / "history.jsonl"
        recs = []
        for line in read_text(path, "run history").splitlines() if path.is_file() else []:
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return recs

    def figure(self, name: str) -> Path:
        """Where the analysis writes figure ``name`` (made from labels: every character that is
        not a plain file-name character becomes ``_``, so it stays inside :attr:`figures`)."""
        return self.figures / safe_filename(name)

    def paper(self, key: str) -> dict[str, Any]:
        """``[analysis.paper.KEY]`` of the sweep file: the published numbers, by group label."""
        return dict((self.params.get("paper") or {}).get(key) or {})


@dataclass
class Result:
    """Tables (title, DataFrame), figures (PNG paths) and notes (lines) of an analysis."""

    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        from ..table import markdown

        parts = [f"### {title}\n\n{markdown(df)}" for title, df in self.tables]
        parts += [f"figure: {p}" for p in self.figures]
        return "\n\n".join(parts + self.notes) + "\n"


Analysis = Callable[[Context], Result]
ANALYSES: Registry[Analysis] = Registry("analysis", "inrlab.analyses")


def get_analysis(name: str) -> Analysis:
    """The registered analysis ``name`` (built-in ones are registered on import)."""
    from . import combined, compression, fresh, iga, ntk  # noqa: F401  (register the built-in analyses)

    return ANALYSES.get(name)


def run_analysis(folder: Path, tier: str, rows: list[dict[str, Any]], axes: list[str],
                 spec: dict[str, Any]) -> Result:
    """Run the analysis ``spec`` ({"name", **params}) on the store rows of ``tier``; figures go
    to ``folder/analysis_files/TIER``."""
    fn = get_analysis(spec["name"])
    figures = folder / "analysis_files" / plain_name(tier, "sweep tier", "the sweep store is "
                                                     "damaged or crafted: rerun the sweep")
    figures.mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in spec.items() if k != "name"}
    return fn(Context(folder, tier, rows, axes, params, figures))


def mean_std(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """``mean ± std`` text per group of ``by`` for each of ``cols`` (std over ≥ 2 runs)."""
    g = df.groupby(by, sort=False)[cols]
    mean, std, n = g.mean(), g.std(), g.count()
    out = mean.copy().astype(object)
    for c in cols:
        out[c] = [f"{m:.2f}" + (f" ± {s:.2f}" if k > 1 else "")
                  for m, s, k in zip(mean[c], std[c], n[c], strict=True)]
    return out.reset_index()
