"""eNTK spectra reproductions (multigrid-encoding paper, normalization paper): statistics of the
spectra recorded by the ``entk_spectra`` callback, averaged over images, λ_min orders of
magnitude above reference models, eigenvalue curves and histograms, and the quality reached."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...ntk.plots import eigenvalue_histograms, sorted_eigenvalue_curves
from . import ANALYSES, Context, Result

STATS = ("lambda_max", "lambda_min", "mean", "variance", "condition")


def _log10(v: Any, floor: float) -> Any:
    """log10 of eigenvalue statistics, clipped at the rounding floor N·ε·λ_max (below it a value
    is not resolved: reported as the floor). None is infinity as stored in JSON (a singular
    kernel's condition number)."""
    return np.log10(np.maximum(np.inf if v is None else v, floor))


def mean_curve(spectra: list[np.ndarray]) -> np.ndarray:
    """The mean of descending eigenvalue curves (N_i,) of possibly different lengths (images of
    different aspect ratios give different numbers of regular points): each curve is resampled
    at the fractional ranks of the shortest, (min N_i,), then averaged."""
    curves = [np.sort(np.asarray(s, np.float64))[::-1] for s in spectra]
    n = min(c.size for c in curves)
    at = np.linspace(0, 1, n)
    return np.mean([np.interp(at, np.linspace(0, 1, c.size), c) for c in curves], 0)


def model_label(row: dict[str, Any]) -> str:
    """A run's model: its axis values other than the signal and the seed, joined by '-'."""
    return "-".join(v for k, v in row["axes"].items() if k not in ("signal", "seed")) or "model"


def ci95(values: Any) -> tuple[float, float, int]:
    """(mean, half-width of the 95 % Student-t confidence interval, n) of ``values``; the
    half-width is NaN for fewer than two values."""
    import scipy.stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    if v.size < 2:
        return float(v.mean()), float("nan"), 1
    half = scipy.stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(half), int(v.size)


def _ci_text(values: Any) -> str:
    m, h, n = ci95(values)
    return "" if n == 0 else f"{m:.2f}" + ("" if n < 2 else f" ± {h:.2f}") + f" ({n})"


def _quality(runs: dict[str, dict[tuple[str, str], dict[str, Any]]], ctx: Context) -> Result:
    """Final PSNR, best training PSNR over the steps (``psnr_train_best``) and MS-SSIM per model
    (mean ± 95 % CI over images × seeds, n); the official code's numbers of this tier beside
    them (``[analysis.code]``, ``tier`` and tables by metric); paired differences of
    ``[analysis] pairs`` ("A vs B": A − B over the (image, seed) pairs both ran)."""
    code = ctx.params.get("code") or {}
    code_here = code if code.get("tier") == ctx.tier else {}
    recs = []
    for m, per in runs.items():
        rec: dict[str, Any] = {"model": m,
                               "PSNR dB": float(np.mean([x["psnr"] for x in per.values()])),
                               "PSNR dB ± 95% CI (n)": _ci_text([x["psnr"] for x in per.values()])}
        best = [x.get("psnr_train_best") for x in per.values()]
        if any(b is not None for b in best):
            rec["best training PSNR dB"] = ci95(best)[0]
            rec["best training PSNR dB ± 95% CI (n)"] = _ci_text(best)
        for metric, values in code_here.items():
            if isinstance(values, dict) and m in values:
                rec[f"official code {metric}"] = values[m]
        rec["MS-SSIM"] = float(np.mean([x.get("ms_ssim") or np.nan for x in per.values()]))
        recs.append(rec)
    res = Result(tables=[("after training", pd.DataFrame(recs))])
    pairs = []
    for pair in ctx.params.get("pairs", []):
        a, _, b = str(pair).partition(" vs ")
        if a not in runs or b not in runs:
            continue
        both = [k for k in runs[a] if k in runs[b]]
        row: dict[str, Any] = {"pair": pair, "pairs": len(both)}
        for metric in ("psnr", "psnr_train_best"):
            d = [runs[a][k].get(metric) - runs[b][k].get(metric) for k in both
                 if runs[a][k].get(metric) is not None and runs[b][k].get(metric) is not None]
            if d:
                mean, half, _ = ci95(d)
                row[f"Δ {metric} dB"] = mean
                row[f"Δ {metric} 95% CI"] = (f"[{mean - half:.2f}, {mean + half:.2f}]"
                                              if np.isfinite(half) else "")
                row[f"{metric}: A wins"] = int(np.sum(np.asarray(d) > 0))
        for metric, values in code_here.items():
            if isinstance(values, dict) and f"{a} vs {b}" in values:
                row[f"official code Δ {metric}"] = values[f"{a} vs {b}"]
        pairs.append(row)
    if pairs:
        res.tables.append(("paired differences A − B over (image, seed) (mean, 95 % Student-t "
                           "CI, wins of A)", pd.DataFrame(pairs)))
    return res


@ANALYSES.register("ntk_spectra")
def ntk_spectra(ctx: Context) -> Result:
    """Per model and spectrum stage ("step N", "step N no grid"): mean log10 statistics over the
    images, mean log10 λ, images with a numerically singular kernel, λ_min orders above each
    model of ``references``; final PSNR / MS-SSIM and the best training PSNR over the steps,
    with 95 % CIs over images × seeds and paired differences (``pairs``); the paper's numbers
    (``[analysis.paper.KEY]`` by model, KEY a column of the step-0 table or ``psnr``) and the
    official code's (``[analysis.code]``) beside ours."""
    runs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # model → (signal, seed) → metrics
    for r in ctx.finished():
        key = (r["axes"].get("signal", ""), r["axes"].get("seed", ""))
        runs.setdefault(model_label(r), {})[key] = r["metrics"]
    if not runs:
        return Result(notes=["no finished runs yet"])
    refs = [m for m in ctx.params.get("references", []) if m in runs]
    stages = sorted({s for per in runs.values() for m in per.values() for s in m.get("spectra", {})},
                    key=lambda k: (int(k.split()[1]), k))
    res = Result()
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for stage in stages:
        recs = []
        for model, per in runs.items():
            images = [i for i, m in per.items() if stage in m.get("spectra", {})]
            if not images:
                continue
            sp = [per[i]["spectra"][stage] for i in images]
            rec: dict[str, Any] = {"model": model}
            rec |= {f"log10 {s}": float(np.mean([_log10(x[s], x["floor"]) for x in sp]))
                    for s in STATS}
            rec["mean log10 λ"] = float(np.mean([np.mean(_log10(np.asarray(x["eigenvalues"]),
                                                                 x["floor"])) for x in sp]))
            # the shape of the spectrum relative to its mean (a trace-normalised kernel's)
            rec["log10 λ_max/mean"] = float(np.mean([np.log10(x["lambda_max"] / x["mean"])
                                                      for x in sp]))
            rec["log10 var/mean²"] = float(np.mean([np.log10(x["variance"] / x["mean"] ** 2)
                                                     for x in sp]))
            if all("offdiag_mean" in x for x in sp):
                rec["offdiag/diag"] = float(np.mean([x["offdiag_mean"] / x["diag_mean"]
                                                      for x in sp]))
            rec["singular"] = sum(bool(x["singular"]) for x in sp)
            base = stage.replace(" no grid", "")
            for ref in refs:
                if ref == model:
                    continue
                pairs = [(per[i]["spectra"][stage], runs[ref][i]["spectra"][base]) for i in images
                         if i in runs[ref] and base in runs[ref][i].get("spectra", {})]
                rec[f"λ_min orders vs {ref}"] = float(np.mean(
                    [_log10(a["lambda_min"], a["floor"]) - _log10(b["lambda_min"], b["floor"])
                     for a, b in pairs])) if pairs else None
            recs.append(rec)
            summary.setdefault(model, {})[stage] = rec
        n = len({i for per in runs.values() for i in per})
        res.tables.append((f"{stage} (means of log10 over {n} run(s): images × seeds, "
                           f"clipped at the rounding floor N·ε·λ_max; singular: images whose "
                           f"λ_min is at that floor)", pd.DataFrame(recs)))
    extra = _quality(runs, ctx)
    quality = extra.tables[0][1]
    res.tables += extra.tables
    paper = ctx.params.get("paper") or {}
    if paper:
        rows = []
        for key, values in paper.items():
            for name, value in values.items():
                # the paper's model and its variants (labels NAME_…, e.g. mpe_fine_init1e-2)
                for model in [m for m in runs if m == name or m.startswith(f"{name}_")] or [name]:
                    q = quality.set_index("model")
                    row = {"model": model, "quantity": key}
                    if key == "psnr":  # final; the normalization paper logs the best over steps
                        row["ours"] = q["PSNR dB"].get(model)
                        if "best training PSNR dB" in q:
                            row["ours (best over steps)"] = q["best training PSNR dB"].get(model)
                    else:
                        row["ours"] = summary.get(model, {}).get(stages[0], {}).get(key) \
                            if stages else None
                    rows.append({**row, "paper": value})
        res.tables.append((f"paper vs ours ({stages[0] if stages else 'no spectra'} for spectra)",
                           pd.DataFrame(rows)))
    for stage in (stages[0], stages[-1]) if len(stages) > 1 else stages[:1]:
        step = stage.split()[1]
        curves = {f"{m} {k.replace(f'step {step}', '').strip()}".strip():
                  mean_curve([np.asarray(x["spectra"][k]["eigenvalues"]) for x in per.values()])
                  for m, per in runs.items()
                  for k in (f"step {step}", f"step {step} no grid")
                  if all(k in x["spectra"] for x in per.values())}
        if curves:
            p1, p2 = ctx.figure(f"sorted_step{step}.png"), ctx.figure(f"histogram_step{step}.png")
            sorted_eigenvalue_curves(curves, p1, f"step {step}, mean over images")
            eigenvalue_histograms(curves, p2, f"step {step}, mean over images")
            res.figures += [p1, p2]
    return res
