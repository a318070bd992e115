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
    means beside the paper's claims (``[analysis.paper]``: quantity → text)."""
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
    return Result(tables=[("FreSh's pick vs the grid", df[[c for c in COLUMNS if c in df]]),
                          ("summary", table)])
