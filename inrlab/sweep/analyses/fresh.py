"""FreSh validation: FreSh's pick (job ``fresh_validate``) against a real grid search."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import ANALYSES, Context, Result

COLUMNS = ["signal", "experiment", "metric", "default", "fresh_pick", "grid_best", "rank", "of", "psnr_pick",
           "psnr_best", "psnr_default", "gap_db", "gain_db", "spearman", "cost"]


@ANALYSES.register("fresh_validation")
def fresh_validation(ctx: Context) -> Result:
    """One row per (signal, experiment): where FreSh's pick ranks among the trained candidates
    (1 = best final PSNR), its PSNR gap to the grid's best, its gain over the default, Spearman's
    ρ between −distance and PSNR, and FreSh's cost in training runs of the default; then the
    means beside the paper's claims (``[analysis.paper]``: quantity → text); with
    ``job.scorings``, each scoring rule's pick, rank and gap against the same grid, and their
    means per rule."""
    rows = [{**r["axes"], **r["metrics"]} for r in ctx.finished()]
    if not rows:
        return Result(notes=["no finished runs yet"])
    df = pd.DataFrame(rows)
    df["default"] = df["default"].map(lambda v: "torch init" if v is None else v)
    summary = {"runs": len(df), "pick is the grid's best": int((df["rank"] == 1).sum()),
               "mean rank": df["rank"].mean(), "mean gap dB": df["gap_db"].mean(),
               "mean gain dB": df["gain_db"].mean(),
               "mean cost (training runs of the default)": df["cost"].mean(),
               "grid search / FreSh cost": float(np.mean(df["of"] / df["cost"]))}
    paper = ctx.params.get("paper") or {}
    table = pd.DataFrame([{"quantity": k, "ours": v, "paper": paper.get(k, "")}
                          for k, v in summary.items()])
    tables = [("FreSh's pick vs the grid", df[[c for c in COLUMNS if c in df]]),
              ("summary", table)]
    rules = pd.DataFrame([{"signal": row.get("signal"), "experiment": row.get("experiment"),
                           "grid_best": row["grid_best"], **sc}
                          for row in rows for sc in row.get("scorings") or []])
    if not rules.empty:  # job.scorings: every rule against the same trained grid
        tables.append(("scoring rules (BINNING:K) against the same grid", rules))
        tables.append(("scoring rules: means over the runs", rules.groupby("scoring", sort=False)
                       .agg(runs=("rank", "size"), best=("rank", lambda r: int((r == 1).sum())),
                            mean_rank=("rank", "mean"), mean_gap_db=("gap_db", "mean"),
                            mean_spearman=("spearman", "mean")).reset_index()))
    return Result(tables=tables)
